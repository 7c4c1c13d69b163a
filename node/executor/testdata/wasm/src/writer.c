// Writes a given number of bytes to stdout and to a file:
// writer <stdout-bytes> [<file> <file-bytes>]
#include <stdio.h>
#include <stdlib.h>

static int emit(FILE *f, long n) {
    for (long i = 0; i < n; i++) {
        if (fputc('a' + (int)(i % 26), f) == EOF) return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: writer <stdout-bytes> [<file> <file-bytes>]\n");
        return 2;
    }
    if (emit(stdout, atol(argv[1]))) return 1;
    if (argc > 3) {
        FILE *f = fopen(argv[2], "wb");
        if (!f) {
            perror(argv[2]);
            return 1;
        }
        if (emit(f, atol(argv[3])) || fclose(f) != 0) {
            perror(argv[2]);
            return 1;
        }
    }
    return 0;
}
