int handle(int event) { return 1; }
