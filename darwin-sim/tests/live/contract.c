/* The target of the Task contract checks (mach_task::contract): main increments `counter` forever. */

/* scratch() is never called; it fills its 16 KiB page alone, so the checks may make that page writable while
 * main runs on another. */
__asm__(".section __TEXT,__text,regular,pure_instructions\n"
        ".globl _scratch\n"
        ".p2align 14\n"
        "_scratch:\n"
        "    mov x0, #42\n"
        "    ret\n"
        "    .space 16384 - 8\n");

unsigned long scratch(void);

/* The loop's only state. */
volatile unsigned long long counter;

/* Data nothing reads. */
__attribute__((used)) unsigned long long scratch_data = 0x5ca7c4da7a000001ULL;

/* Pointers are rebased at launch, so this lands in __DATA_CONST, which the loader makes read-only afterwards. */
__attribute__((used)) void *const table[] = {(void *)&scratch_data, (void *)scratch};

int main(void) {
    for (;;)
        counter++;
}
