/* BERT's tokenizer (WordPiece, as Hugging Face `tokenizers` runs it for bert-base-uncased and all-MiniLM-L6-v2):
 *   normalize   drop NUL, U+FFFD and control characters (tab, newline, return are whitespace), every whitespace to a
 *               space; spaces around CJK ideographs; accents stripped (NFD, then combining marks dropped: utf8proc);
 *               lowercase
 *   split       on whitespace, and every punctuation character (ASCII punctuation or Unicode P*) alone
 *   wordpiece   each word greedily into the longest vocabulary pieces, continuations prefixed "##"; a word that
 *               cannot be covered, or is over 100 characters, is [UNK]
 * Encoding gives [CLS] pieces [SEP], truncated to max_len ids (sentence-transformers uses 256 for MiniLM). Bytes that
 * are not UTF-8 are dropped. As Hugging Face does, the special tokens written out in the text ([UNK], [CLS], [SEP],
 * [PAD], [MASK]) are matched first and become their ids. */
#ifndef GRADLAB_WORDPIECE_H
#define GRADLAB_WORDPIECE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gl_wordpiece gl_wordpiece;

/* vocab.txt: one piece per line, the line number is the id; [CLS], [SEP], [UNK], [PAD] must be there */
gl_wordpiece *gl_wordpiece_load(const char *vocab_path, char *err, size_t err_len);
void gl_wordpiece_free(gl_wordpiece *w);
int gl_wordpiece_vocab_size(const gl_wordpiece *w);
const char *gl_wordpiece_piece(const gl_wordpiece *w, int32_t id);
/* Up to max_len ids (max_len >= 2) into ids; returns how many. *truncated (if not NULL) says whether pieces were cut. */
int gl_wordpiece_encode(const gl_wordpiece *w, const char *text, int32_t *ids, int max_len, bool *truncated);

#endif
