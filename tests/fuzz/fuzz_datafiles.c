/* libFuzzer target for the data files a user points the labs and train at: the first byte picks the reader --
 * IDX images or labels (core/idx.c, gzip or not), numeric CSV (core/csv.c), token files (tokenizer/tokfile.c),
 * word2vec vectors (models/word2vec.c) -- and the rest is the file. Whatever loads is read end to end. `make fuzz`. */
#include "csv.h"
#include "fuzz_util.h"
#include "idx.h"
#include "tokfile.h"
#include "word2vec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0] % 5;
    const char *path = fuzz_write("data", data + 1, size - 1);
    char err[512];
    volatile unsigned sum = 0;
    if (mode <= 1) {
        gl_idx t;
        if (gl_idx_read(path, mode == 0, &t, err, sizeof err)) {
            size_t n = (size_t)t.count * (mode == 0 ? (size_t)t.rows * t.cols : 1);
            if (n) sum += t.data[n - 1];
            gl_idx_free(&t);
        }
    } else if (mode == 2) {
        gl_csv t;
        if (gl_csv_read(path, &t, err, sizeof err)) {
            sum += (unsigned)t.values[(size_t)t.rows * t.cols - 1] + (unsigned char)t.names[t.cols - 1][0];
            gl_csv_free(&t);
        }
    } else if (mode == 3) {
        int32_t *ids;
        size_t n;
        int vocab;
        if (gl_tokfile_read(path, &ids, &n, &vocab, err, sizeof err)) {
            if (n) sum += (unsigned)ids[n - 1];
            free(ids);
        }
    } else {
        gl_w2v_vocab vocab;
        float *vectors;
        int dim;
        if (gl_w2v_load(path, &vocab, &vectors, &dim, err, (int)sizeof err)) {
            sum += (unsigned)vectors[(size_t)vocab.size * dim - 1];
            gl_w2v_vocab_free(&vocab);
            free(vectors);
        }
    }
    (void)sum;
    return 0;
}
