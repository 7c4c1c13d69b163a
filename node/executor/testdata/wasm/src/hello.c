// Prints a greeting and its arguments: the smallest useful job.
#include <stdio.h>

int main(int argc, char **argv) {
    printf("hello from wasm\n");
    for (int i = 1; i < argc; i++) {
        printf("arg %d: %s\n", i, argv[i]);
    }
    fprintf(stderr, "hello on stderr\n");
    return 0;
}
