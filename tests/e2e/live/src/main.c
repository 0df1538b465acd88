/* A thread is inside the function being edited at the moment of the update: it must be moved, not overwritten. */
void work(int round);

int main(void) {
    for (int round = 0; round < 100000; round++) {
        work(round);
    }
    return 0;
}
