/* The gold sets of lab 11 and `make eval`, read once here:
 *   spam        the SpamAssassin TSV of the course's data folder (spam/spam.tsv: label, group, id, split, text with
 *               \\ \t \n escapes; its SOURCE.md)
 *   injection   bastioncorpus's injections.jsonl (make data DATA_SETS=bastion), plus the FastAPI docs' chunks with
 *               and without a planted instruction (channel "document"), plus the 40 gold questions (channel
 *               "question", benign, never trained on)
 * and the injection classifier cross-validated over them. */
#ifndef GRADLAB_GUARD_DATASETS_H
#define GRADLAB_GUARD_DATASETS_H

#include <stdbool.h>
#include <stddef.h>

#include "store.h"
#include "textclf.h"

typedef struct {
    char **text;
    size_t *len;
    int *label; /* 1 = spam */
    bool *test; /* the file's split */
    int n;
} spam_set;

/* false with "FILE:LINE: what is wrong" */
bool spam_load(const char *path, spam_set *s, char *err, size_t err_len);
void spam_free(spam_set *s);

/* One model of the spam experiment (lab 11, make eval): trained on the file's training mails but every fifth, its
 * threshold the F1-best on that fifth, scored on the test mails. */
typedef struct {
    double threshold, ap, train_s;
    tc_metrics test;
    float *recall, *precision; /* the test mails' PR curve, n_pr points (malloc'd) */
    int n_pr;
} spam_run;

/* the hashing table sizes spam_experiment chooses among */
enum { SPAM_N_BITS = 4 };
extern const int SPAM_BITS[SPAM_N_BITS]; /* 12 14 16 18 */

typedef struct {
    int n_train, n_val, n_test, bits;
    bool bits_chosen;               /* bits was chosen on the validation mails */
    double val_f1[SPAM_N_BITS];     /* the logistic regression's validation F1 at each of SPAM_BITS */
    double nonzero_per_mail, featurize_s, select_s;
} spam_split_info;

/* runs[0]: logistic regression; runs[1]: the MLP when with_mlp (38 s here, the regression 0.6 s). Features: TF-IDF
 * on 2^bits hashed n-grams, idf from the training mails; bits 0: the SPAM_BITS size whose logistic regression has
 * the best F1 on the validation mails (the test mails play no part in the choice). */
void spam_experiment(const spam_set *s, bool with_mlp, int bits, spam_run runs[2], spam_split_info *info);
void spam_run_free(spam_run *r);

/* The third model: a GPT body (models/gpt.h, fresh weights, bytes as tokens) reading a mail's first `block` bytes
 * (shorter mails padded with spaces in front), lab 07's reward head on the last position as the logit, trained
 * with the binary cross-entropy (pref_bce_loss) by AdamW on random batches of the training mails; the same split
 * and threshold choice as spam_experiment. loss_curve: `steps` floats (the batch losses), or NULL. */
typedef struct {
    int n_layer, n_head, n_embd, block, steps, batch;
    float lr;
    unsigned long long seed;
} spam_gpt_config;
#define SPAM_GPT_DEFAULTS ((spam_gpt_config){2, 4, 64, 256, 600, 16, 1e-3f, 1})
void spam_gpt_experiment(const spam_set *s, spam_gpt_config c, spam_run *r, float *loss_curve);

typedef struct {
    char *id, *text, *channel, *category, *lang;
    char *group;     /* rows of one group share a fold: the same intent, template or page */
    int malicious;
    bool eval_only;  /* never trained on (the questions) */
} inj_row;

typedef struct {
    inj_row *rows;
    int n, cap;
} inj_set;

/* the canary that stands for the corpus's {canary} placeholder */
#define INJ_CANARY "CANARY-5d41"

/* appends to s (the rows read before an error stay in s: inj_free either way) */
bool inj_load_bastion(const char *path, inj_set *s, char *err, size_t err_len);
/* n_docs chunks of the store (every k-th chunk of 200 to 1500 bytes outside release-notes.md): the even ones with
 * planted instruction (i / 2) mod GUARD_N_PLANTS, the odd ones as they are. Returns how many were added. */
int inj_add_documents(inj_set *s, const store *st, int n_docs);
/* gold.jsonl's questions as benign, eval-only rows */
bool inj_add_questions(inj_set *s, const char *gold_path, char *err, size_t err_len);
void inj_free(inj_set *s);

/* Each row's probability from a logistic regression on hashed n-grams that never saw it: rows are split into `folds`
 * folds by their group; each fold is scored by a model trained on the others (and on the extra benign texts);
 * eval-only rows by a model trained on every trainable row. prob has room for s->n. */
void inj_cross_validate(const inj_set *s, const char *const *extra_benign, int n_extra, int folds, double *prob);
/* the classifier trained on every trainable row and the extra benign texts, its threshold 0.5 */
void inj_train_classifier(const inj_set *s, const char *const *extra_benign, int n_extra, tc_classifier *c);
/* Blocks counted per channel: the malicious rows blocked, and the benign rows blocked (false positives). `all` sums
 * every channel but the questions, whose false positives are reported on their own. counted NULL: every row. */
enum { INJ_N_CHANNELS = 5 };
extern const char *const INJ_CHANNELS[INJ_N_CHANNELS]; /* user_input tool_output memory document question */
typedef struct {
    int mal, mal_blocked, ben, ben_blocked;
} inj_tally;
void inj_tally_blocks(const inj_set *s, const bool *blocked, const bool *counted, inj_tally per[INJ_N_CHANNELS],
                      inj_tally *all);

/* the extra benign texts: n chunks from the pages inj_add_documents does not use (odd pages; pointers into st) */
int inj_benign_chunks(const store *st, int n, const char **out);

#endif
