#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct item { int key; struct item *next; };

static struct item *push(struct item *head, int key) {
    struct item *it = malloc(sizeof *it);
    it->key = key;
    it->next = head;
    return it;
}

static void sort(int *v, int n) {
    for (int i = 1; i < n; i++) {
        int x = v[i], j = i - 1;
        while (j >= 0 && v[j] > x) {
            v[j + 1] = v[j];
            j--;
        }
        v[j + 1] = x;
    }
}

int main(void) {
    struct item *head = NULL;
    for (int i = 0; i < 10; i++) {
        head = push(head, (i * 7) % 10);
    }
    int *keys = calloc(4, sizeof(int));
    int n = 0, cap = 4;
    for (struct item *it = head; it; it = it->next) {
        if (n == cap) {
            cap *= 2;
            keys = realloc(keys, cap * sizeof(int));
        }
        keys[n++] = it->key;
    }
    sort(keys, n);
    for (int i = 0; i < n; i++) {
        printf("%d ", keys[i]);
    }
    printf("(cap %d)\n", cap);
    while (head) {
        struct item *next = head->next;
        free(head);
        head = next;
    }
    char *copy = malloc(16);
    memcpy(copy, "heap ok", 8);
    puts(copy);
    free(copy);
    free(keys);
    return 0;
}
