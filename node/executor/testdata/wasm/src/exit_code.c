// Exits with the code given in the EXIT_CODE environment variable.
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    const char *code = getenv("EXIT_CODE");
    if (!code) {
        fprintf(stderr, "EXIT_CODE is not set\n");
        return 100;
    }
    printf("exiting with %s\n", code);
    return atoi(code);
}
