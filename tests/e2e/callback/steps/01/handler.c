int handle(int event) { return 2; }
