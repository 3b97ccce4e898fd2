/* The IDX reader (MNIST's format), plain and gzip-compressed, and its errors. */
#include <zlib.h>

#include "idx.h"
#include "testutil.h"

static const unsigned char image_file[] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3, /* 2 images of 2 x 3 */
                                           1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

static void write_plain(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
}

Test(idx, reads_plain_and_gzip_files) {
    char path[64], err[256];
    snprintf(path, sizeof path, "/tmp/gradlab_idx_%d", (int)getpid());
    write_plain(path, image_file, sizeof image_file);
    gl_idx t;
    cr_assert(gl_idx_read(path, true, &t, err, sizeof err), "%s", err);
    cr_assert(t.count == 2 && t.rows == 2 && t.cols == 3 && t.data[0] == 1 && t.data[11] == 12);
    gl_idx_free(&t);
    gzFile g = gzopen(path, "wb");
    gzwrite(g, image_file, sizeof image_file);
    gzclose(g);
    cr_assert(gl_idx_read(path, true, &t, err, sizeof err), "gzip: %s", err);
    cr_assert(t.count == 2 && t.data[5] == 6);
    gl_idx_free(&t);
    remove(path);
}

Test(idx, bad_files_get_clear_messages) {
    char path[64], err[256];
    snprintf(path, sizeof path, "/tmp/gradlab_idx_bad_%d", (int)getpid());
    gl_idx t;
    write_plain(path, image_file, sizeof image_file - 1); /* one pixel short */
    cr_assert(!gl_idx_read(path, true, &t, err, sizeof err) && strstr(err, "less data"), "%s", err);
    write_plain(path, image_file, sizeof image_file);
    cr_assert(!gl_idx_read(path, false, &t, err, sizeof err) && strstr(err, "not an IDX label file"), "%s", err);
    unsigned char more[sizeof image_file + 1];
    memcpy(more, image_file, sizeof image_file);
    more[sizeof image_file] = 0;
    write_plain(path, more, sizeof more);
    cr_assert(!gl_idx_read(path, true, &t, err, sizeof err) && strstr(err, "more data"), "%s", err);
    write_plain(path, image_file, 10);
    cr_assert(!gl_idx_read(path, true, &t, err, sizeof err) && strstr(err, "header"), "%s", err);
    cr_assert(!gl_idx_read("/nonexistent/x", true, &t, err, sizeof err) && strstr(err, "cannot open"), "%s", err);
    remove(path);
}

/* the real MNIST subset, when the shared data folder is present */
Test(idx, real_mnist_subset_has_its_documented_label_histogram) {
    const char *root = getenv("GRADLAB_DATA") ? getenv("GRADLAB_DATA") : "../shared/data";
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/mnist/test-labels-idx1-ubyte", root);
    if (access(path, R_OK)) {
        fprintf(stderr, "[WARN] skipped: %s not found\n", path);
        return;
    }
    gl_idx t;
    cr_assert(gl_idx_read(path, false, &t, err, sizeof err), "%s", err);
    int hist[10] = {0}, want[10] = {200, 225, 198, 206, 196, 173, 203, 214, 189, 196}; /* from its SOURCE.md */
    for (int i = 0; i < t.count; i++) hist[t.data[i]]++;
    for (int c = 0; c < 10; c++) cr_assert(hist[c] == want[c], "digit %d: %d labels, expected %d", c, hist[c], want[c]);
    gl_idx_free(&t);
}
