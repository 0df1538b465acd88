// malloc, calloc, realloc and free under load; the string.h functions; a sorted linked list.
// exit: 0
// stdout: list: 3 9 14 27 41 58 62 80 95 99
// stdout: sum=488 freed=10
// stdout: grow: 1000 ints, last=999000, zeros=1
// stdout: strings: len=11 cmp<0=1 cmp=0=1 ncmp=0=1 memcmp>0=1
// stdout: moved: abcabcdefg
// stdout: filled: xxxxxxxx|
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node { int value; struct node *next; };

static struct node *insert(struct node *head, int v) {
    struct node *n = malloc(sizeof *n);
    n->value = v;
    if (!head || v < head->value) { n->next = head; return n; }
    struct node *p = head;
    while (p->next && p->next->value < v) p = p->next;
    n->next = p->next;
    p->next = n;
    return head;
}

int main(void) {
    int values[] = {58, 3, 99, 27, 80, 14, 62, 9, 41, 95};
    struct node *head = NULL;
    for (int i = 0; i < 10; i++) head = insert(head, values[i]);
    printf("list:");
    int sum = 0;
    for (struct node *p = head; p; p = p->next) { printf(" %d", p->value); sum += p->value; }
    int freed = 0;
    while (head) { struct node *next = head->next; free(head); head = next; freed++; }
    printf("\nsum=%d freed=%d\n", sum, freed);

    int *v = calloc(10, sizeof *v);
    int zeros = v[9] == 0;
    for (int n = 20; n <= 1000; n += 20) {
        v = realloc(v, n * sizeof *v);
        for (int i = n - 20; i < n; i++) v[i] = i * 1000;
    }
    printf("grow: %d ints, last=%d, zeros=%d\n", 1000, v[999], zeros);
    free(v);

    char s[32];
    strcpy(s, "hello world");
    printf("strings: len=%zu cmp<0=%d cmp=0=%d ncmp=0=%d memcmp>0=%d\n", strlen(s), strcmp("abc", "abd") < 0,
           strcmp(s, "hello world") == 0, strncmp(s, "help", 3) == 0, memcmp("b", "a", 1) > 0);
    char m[16] = "abcdefg";
    memmove(m + 3, m, 7);
    m[10] = 0;
    printf("moved: %s\n", m);
    char f[10];
    memset(f, 'x', 8);
    f[8] = '|';
    f[9] = 0;
    printf("filled: %s\n", f);
    return 0;
}
