/* sim SDK: Darwin's <assert.h>. Not include-guarded, like the C standard's: NDEBUG is honoured per inclusion. */
#undef assert

#ifdef NDEBUG
#define assert(e) ((void)0)
#else
void __assert_rtn(const char *func, const char *file, int line, const char *expr)
    __attribute__((__noreturn__, __cold__));
#define assert(e) (__builtin_expect(!(e), 0) ? __assert_rtn(__func__, __FILE__, __LINE__, #e) : (void)0)
#endif
