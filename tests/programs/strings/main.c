#include <stdio.h>
#include <string.h>

const char *greeting(void);
const char *farewell(void);

static const char *words[] = {"apple", "banana", "cherry", "apple"};

int main(void) {
    char buf[64];
    strcpy(buf, greeting());
    printf("%s (%lu)\n", buf, (unsigned long)strlen(buf));
    printf("%s\n", farewell());
    printf("cmp=%d %d %d\n", strcmp(words[0], words[3]) == 0, strcmp(words[0], words[1]) < 0,
           strncmp("abcdef", "abcxyz", 3) == 0);
    printf("same literal: %d\n", words[0] == words[3]);
    for (int i = 0; i < 4; i++) {
        printf("[%s]", words[i]);
    }
    putchar('\n');
    return 0;
}
