// Counts words in every regular file of a folder: wordcount <dir> [<report>].
// Files are visited in sorted name order so the report is the same on every node.
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static long count_words(FILE *f) {
    long words = 0;
    int in_word = 0, c;
    while ((c = fgetc(f)) != EOF) {
        if (isspace(c)) {
            in_word = 0;
        } else if (!in_word) {
            in_word = 1;
            words++;
        }
    }
    return words;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: wordcount <dir> [<report>]\n");
        return 2;
    }
    DIR *d = opendir(argv[1]);
    if (!d) {
        perror(argv[1]);
        return 1;
    }
    size_t cap = 64, n = 0;
    char **names = malloc(cap * sizeof *names);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap *= 2;
            names = realloc(names, cap * sizeof *names);
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp);

    FILE *report = stdout;
    if (argc > 2) {
        report = fopen(argv[2], "w");
        if (!report) {
            perror(argv[2]);
            return 1;
        }
    }
    long total = 0;
    char path[4096];
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", argv[1], names[i]);
        FILE *f = fopen(path, "r");
        if (!f) {
            perror(path);
            return 1;
        }
        long w = count_words(f);
        fclose(f);
        fprintf(report, "%s %ld\n", names[i], w);
        total += w;
    }
    fprintf(report, "total %ld\n", total);
    if (report != stdout) fclose(report);
    printf("files %zu words %ld\n", n, total);
    return 0;
}
