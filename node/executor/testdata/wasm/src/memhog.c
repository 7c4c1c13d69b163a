// Allocates and touches memory until stopped by the memory limit.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *volatile keep;

int main(void) {
    size_t total = 0;
    for (;;) {
        char *p = malloc(1 << 20);
        if (!p) {
            printf("allocation refused after %zu MiB\n", total >> 20);
            return 3;
        }
        memset(p, 0xab, 1 << 20);
        *(void **)p = keep;
        keep = p;
        total += 1 << 20;
    }
}
