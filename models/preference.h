/* Preference learning on the GPT: a checkable judge, a reward model trained with the Bradley-Terry loss, and
 * Direct Preference Optimisation.
 *
 *   judge:          the share of a text's complete words found in an English word list (wamerican's
 *                   /usr/share/dict/words). Words are word2vec's: lower-cased runs of letters and digits; a word
 *                   cut off by the end of the text is not counted. A rule anyone can check, that a model can
 *                   learn (spelling) - and that can be gamed (real but repeated short words score 1).
 *   reward model:   the GPT's body with a scalar head on the last position's hidden state: r(x, y) = h_T . w + b.
 *   Bradley-Terry:  P(chosen beats rejected) = s(r_c - r_r); loss = -mean log s(r_c - r_r).
 *   DPO:            with the policy's and a frozen reference's sequence log-probabilities of the completions,
 *                   loss = -mean log s(beta ((log pi(y_c) - log ref(y_c)) - (log pi(y_r) - log ref(y_r)))).
 *                   At the start pi = ref, so the loss is log 2.
 */
#ifndef GRADLAB_PREFERENCE_H
#define GRADLAB_PREFERENCE_H

#include "gpt.h"
#include "word2vec.h"

typedef struct {
    gl_w2v_vocab words;
} pref_judge;

/* a word list, one word per line (case ignored); false with a message */
bool pref_judge_load(pref_judge *j, const char *path, char *err, size_t err_len);
/* share of the complete words of text in the list (0 if it has none); *n_words (may be NULL) gets their number */
double pref_judge_score(const pref_judge *j, const char *text, size_t len, int *n_words);
void pref_judge_free(pref_judge *j);

typedef struct {
    gpt body;
    gl_tensor *head_w, *head_b; /* [n_embd, 1], [1] */
    gl_tensor **params;         /* the body's parameters, then the head's */
    int n_params;
} pref_reward_model;

/* Takes over a (loaded) GPT as the body; the head starts at zero, so every reward starts at 0. */
void pref_reward_init(pref_reward_model *rm, gpt body);
/* rewards [B] of B sequences of T tokens: the head on the last position */
gl_tensor *pref_reward(pref_reward_model *rm, const int32_t *idx, int B, int T);
void pref_reward_free(pref_reward_model *rm);

/* the binary cross-entropy of logits z [n] against labels y (0 or 1): the mean of -log s((2y - 1) z), i.e.
 * -log s(z) for a positive and -log s(-z) = -log(1 - s(z)) for a negative. The reward model with this loss is a
 * text classifier (lab 11's spam filter on the GPT body). */
gl_tensor *pref_bce_loss(gl_tensor *logits, const float *labels);
/* mean -log s(chosen - rejected) over the pairs; both [n] */
gl_tensor *pref_bradley_terry_loss(gl_tensor *chosen, gl_tensor *rejected);
/* log-probabilities [B] of sequences under m: the sum over positions of log p(targets[b, t] | idx[b, .. t]),
 * positions whose target is -1 (the prompt) left out */
gl_tensor *pref_sequence_logprob(gpt *m, const int32_t *idx, const int32_t *targets, int B, int T);
/* the DPO loss from the policy's log-probabilities (with gradient) and the reference's (constants); all [n] */
gl_tensor *pref_dpo_loss(gl_tensor *pi_chosen, gl_tensor *pi_rejected, gl_tensor *ref_chosen,
                         gl_tensor *ref_rejected, float beta);

#endif
