#include <stdio.h>

extern int counter;
extern int *counter_ptr;
int step(void);

int values[4] = {10, 20, 30, 40};
int *cursor = &values[2];
int **cursor_ptr = &cursor;
int (*stepper)(void) = step;

struct node { int value; struct node *next; };
struct node third = {3, 0};
struct node second = {2, &third};
struct node first = {1, &second};

int main(void) {
    printf("cursor=%d via ptr=%d\n", *cursor, **cursor_ptr);
    *counter_ptr += 5;
    stepper();
    stepper();
    printf("counter=%d\n", counter);
    int sum = 0;
    for (struct node *n = &first; n; n = n->next) {
        sum = sum * 10 + n->value;
    }
    printf("list=%d\n", sum);
    cursor = &values[3];
    printf("cursor now=%d\n", **cursor_ptr);
    return 0;
}
