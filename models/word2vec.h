/* word2vec: skip-gram with negative sampling (Mikolov et al. 2013), trained as word2vec.c trains it.
 *
 *   text -> words:  lower-cased runs of ASCII letters and digits; every other byte separates words. A line of the
 *                   text is a sentence (split further into pieces of at most max_sentence words); context windows
 *                   never cross a sentence.
 *   vocabulary:     words seen at least min_count times, by descending count (ties alphabetical); rarer words are
 *                   dropped from the training stream, as word2vec.c and gensim drop them.
 *   subsampling:    a word with corpus share f is kept with probability sqrt(t/f) + t/f (t = `sample`).
 *   noise:          negatives are drawn from count^0.75, through an alias table (Vose) over the vocabulary - the
 *                   same distribution word2vec.c's 1e8-slot table approximates, in vocabulary-sized memory.
 *   update:         for a context word c and its centre word w, with K negatives n_k:
 *                     loss = -log s(v_c . u_w) - sum_k log s(-v_c . u_nk)        (s = the logistic sigmoid)
 *                   one SGD step of size alpha on v_c (the "input" vector) and on u_w, u_nk (the "output" vectors).
 *   learning rate:  alpha falls linearly with the words processed, to 1e-4 of its start.
 *   threads:        each thread trains on its own slice of the sentences and updates the shared vectors without
 *                   locks (Hogwild), exactly like word2vec.c and gensim. Collisions are rare and harmless to the
 *                   result's quality, but they make runs with 2+ threads differ in the last bits from run to run.
 *                   With threads = 1 a run is a pure function of its seed (bitwise reproducible; tested).
 */
#ifndef GRADLAB_WORD2VEC_H
#define GRADLAB_WORD2VEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int size;
    char **words;    /* by descending count */
    int64_t *counts;
    int64_t total;   /* sum of counts: the training words per epoch */
    int *slots;      /* open-addressing hash of word -> id (-1 empty) */
    int n_slots;
} gl_w2v_vocab;

/* the text as vocabulary ids, one sentence after another */
typedef struct {
    int32_t *ids;
    int64_t n;
    int64_t *sentence_start; /* n_sentences + 1 offsets into ids */
    int64_t n_sentences;
    int64_t raw_words;       /* words in the text before the vocabulary's cut */
} gl_w2v_corpus;

/* Builds the vocabulary (words seen >= min_count times) and the id stream of text. False with a message when the
 * text has no word that often (an empty corpus included). */
bool gl_w2v_build(const char *text, size_t len, int min_count, int max_sentence, gl_w2v_vocab *vocab,
                  gl_w2v_corpus *corpus, char *err, int err_len);
/* The files one after another, each ending with a line break so no sentence runs from one into the next; false
 * with the reader's message (naming the file) on the first that cannot be read. */
bool gl_w2v_read_corpora(const char *const *paths, int n, char **text, size_t *len, char *err, int err_len);
/* id of a word (exact, already lower-case), or -1 */
int gl_w2v_find(const gl_w2v_vocab *vocab, const char *word);
void gl_w2v_vocab_free(gl_w2v_vocab *vocab);
void gl_w2v_corpus_free(gl_w2v_corpus *corpus);

/* Splits text into lower-case words: calls fn for each (word, its length) and at each line end with len 0. */
void gl_w2v_words(const char *text, size_t len, void (*fn)(void *ctx, const char *word, int len), void *ctx);

/* Noise distribution: P(i) = counts[i]^power / sum. Vose's alias table: draw i uniformly, keep it with
 * probability keep[i], else take alias[i]. */
typedef struct {
    int size;
    float *keep;
    int32_t *alias;
} gl_w2v_noise;
bool gl_w2v_noise_init(gl_w2v_noise *noise, const int64_t *counts, int size, double power);
/* the probability the table gives word i (for tests) */
double gl_w2v_noise_prob(const gl_w2v_noise *noise, int i);
/* one draw from 64 random bits */
static inline int gl_w2v_noise_draw(const gl_w2v_noise *noise, uint64_t bits) {
    uint32_t i = (uint32_t)(((bits >> 32) * (uint64_t)noise->size) >> 32);
    float coin = (float)(bits & 0xFFFFFF) * (1.0f / 16777216.0f);
    return coin < noise->keep[i] ? (int)i : noise->alias[i];
}
void gl_w2v_noise_free(gl_w2v_noise *noise);

/* The probability of keeping an occurrence of a word seen `count` times among `total` (1 when sample <= 0). */
double gl_w2v_keep_prob(int64_t count, int64_t total, double sample);

/* The update itself is the kernel gl_kernels.sgns_step (kernels/cpu/vec.c), with its scalar reference. */

typedef struct {
    int dim, window, negative, min_count, epochs, threads, max_sentence;
    float alpha, sample;
    uint64_t seed;
    bool progress; /* a progress line on stderr */
} gl_w2v_config;
/* word2vec.c's skip-gram defaults: dim 100, window 5, negative 5, min_count 5, 5 epochs, alpha 0.025,
 * sample 1e-3, sentences of <= 1000 words; 1 thread, seed 1 */
gl_w2v_config gl_w2v_defaults(void);

typedef struct {
    int dim, stride;     /* rows are `stride` floats apart (dim rounded up to 16; the padding stays zero) */
    int size;
    float *in, *out;     /* word vectors (the result) and output vectors */
} gl_w2v_model;

typedef struct {
    double seconds, words_per_second; /* training words (vocabulary words x epochs) per wall-clock second */
    int64_t words, pairs;             /* words processed, (context, centre) pairs trained */
    /* the loss per (context, word) pair, measured on every 16th pair: its mean over each 1% of training (or over
     * each report's 10,000 words per thread, when that is longer) */
    double final_loss;
    int n_curve;
    float curve_progress[102], curve_loss[102];
} gl_w2v_stats;

/* Initialises the model (input vectors uniform in +-0.5/dim, output vectors zero, as word2vec.c) and trains it. */
bool gl_w2v_train(gl_w2v_model *model, const gl_w2v_vocab *vocab, const gl_w2v_corpus *corpus,
                  const gl_w2v_config *cfg, gl_w2v_stats *stats, char *err, int err_len);
void gl_w2v_model_free(gl_w2v_model *model);

/* Unit-length copy of the input vectors, size x dim (dense, no padding). Caller frees. */
float *gl_w2v_unit_vectors(const gl_w2v_model *model);

/* The k words with the highest cosine to query (unit vectors `unit`, size x dim), skipping ids in exclude. */
int gl_w2v_nearest(const float *unit, int size, int dim, const float *query, const int *exclude, int n_exclude,
                   int k, int *ids, float *sims);

/* Analogy questions "a b c d" (a is to b as c is to d), sections opened by ": name" lines, as in word2vec's
 * questions-words.txt. A question counts when its four words (lower-cased) are among the first `restrict_to`
 * words of the vocabulary (0: all); it is right when d is the nearest word to b - a + c of unit vectors
 * (3CosAdd), a, b and c excluded - the rule of word2vec's compute-accuracy and gensim's evaluate_word_analogies. */
typedef struct {
    char name[64];
    int total, covered, correct;
} gl_w2v_section;
typedef struct {
    gl_w2v_section *sections;
    int n_sections;
    int total, covered, correct;                      /* all sections */
    int semantic_covered, semantic_correct;           /* sections not starting with "gram" */
    int syntactic_covered, syntactic_correct;
} gl_w2v_analogies;
bool gl_w2v_eval_analogies(const float *unit, const gl_w2v_vocab *vocab, int dim, const char *text, size_t len,
                           int restrict_to, gl_w2v_analogies *out, char *err, int err_len);
void gl_w2v_analogies_free(gl_w2v_analogies *a);

/* word2vec's binary vector format (read by gensim's KeyedVectors.load_word2vec_format(binary=True)):
 * "size dim\n", then per word: the word, a space, dim little-endian float32, "\n". Written atomically. */
bool gl_w2v_save(const char *path, const gl_w2v_vocab *vocab, const float *vectors, int dim, int row_stride,
                 char *err, int err_len);
/* Reads that format: words into a fresh vocabulary (counts 0), vectors (size x dim) malloc'd. */
bool gl_w2v_load(const char *path, gl_w2v_vocab *vocab, float **vectors, int *dim, char *err, int err_len);

#endif
