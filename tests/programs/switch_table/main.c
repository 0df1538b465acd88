#include <stdio.h>

int classify(int x) {
    switch (x) {
    case 0: return 17;
    case 1: return 4;
    case 2: return 99;
    case 3: return -5;
    case 4: return 12;
    case 5: return 1000;
    case 6: return 6;
    case 7: return 70;
    case 8: return 81;
    case 9: return -9;
    default: return 0;
    }
}

const char *word(unsigned x) {
    switch (x) {
    case 0: return "zero";
    case 1: return "one";
    case 2: return "two";
    case 3: return "three";
    case 4: return "four";
    case 5: return "five";
    case 6: return "six";
    default: return "many";
    }
}

int main(void) {
    int sum = 0;
    for (int i = -1; i < 12; i++) {
        sum = sum * 3 + classify(i);
    }
    printf("sum=%d\n", sum);
    for (unsigned i = 0; i < 9; i++) {
        printf("%s%c", word(i), i == 8 ? '\n' : ' ');
    }
    return 0;
}
