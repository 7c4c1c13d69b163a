// Landsat-style cloud mask: thresholds a binary PGM (P5, 8-bit) image into a
// mask image where bright pixels (clouds) are 255 and the rest 0.
// cloudmask <in.pgm> <mask.pgm> [threshold]
#include <stdio.h>
#include <stdlib.h>

static int read_header_int(FILE *f) {
    int c = fgetc(f);
    while (c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '#') {
        if (c == '#') {
            while (c != '\n' && c != EOF) c = fgetc(f);
        }
        c = fgetc(f);
    }
    int v = 0;
    while (c >= '0' && c <= '9') {
        v = v * 10 + (c - '0');
        c = fgetc(f);
    }
    return v;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: cloudmask <in.pgm> <mask.pgm> [threshold]\n");
        return 2;
    }
    int threshold = argc > 3 ? atoi(argv[3]) : 200;
    FILE *in = fopen(argv[1], "rb");
    if (!in) {
        perror(argv[1]);
        return 1;
    }
    if (fgetc(in) != 'P' || fgetc(in) != '5') {
        fprintf(stderr, "%s: not a binary PGM (P5)\n", argv[1]);
        return 1;
    }
    int w = read_header_int(in), h = read_header_int(in), maxval = read_header_int(in);
    if (w <= 0 || h <= 0 || maxval != 255) {
        fprintf(stderr, "%s: unsupported PGM header %dx%d max %d\n", argv[1], w, h, maxval);
        return 1;
    }
    size_t n = (size_t)w * (size_t)h;
    unsigned char *px = malloc(n);
    if (!px || fread(px, 1, n, in) != n) {
        fprintf(stderr, "%s: truncated image\n", argv[1]);
        return 1;
    }
    fclose(in);
    size_t cloudy = 0;
    for (size_t i = 0; i < n; i++) {
        px[i] = px[i] >= threshold ? 255 : 0;
        cloudy += px[i] != 0;
    }
    FILE *out = fopen(argv[2], "wb");
    if (!out) {
        perror(argv[2]);
        return 1;
    }
    fprintf(out, "P5\n%d %d\n255\n", w, h);
    fwrite(px, 1, n, out);
    if (fclose(out) != 0) {
        perror(argv[2]);
        return 1;
    }
    printf("pixels %zu cloudy %zu (%.2f%%)\n", n, cloudy, 100.0 * (double)cloudy / (double)n);
    return 0;
}
