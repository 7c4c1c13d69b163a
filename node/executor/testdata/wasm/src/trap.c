// Prints a line, then aborts: a guest trap, recorded as exit code 134.
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    printf("about to abort\n");
    fflush(stdout);
    abort();
}
