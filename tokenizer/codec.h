/* The text <-> token ids mapping a model was trained with: a character vocabulary or a BPE tokenizer. Programs
 * (train, infer) use this one interface; checkpoints store whichever it is. */
#ifndef GRADLAB_CODEC_H
#define GRADLAB_CODEC_H

#include "bpe.h"
#include "charvocab.h"

typedef struct gl_codec {
    gl_charvocab chars; /* used when bpe is NULL */
    gl_bpe *bpe;
} gl_codec;

int gl_codec_size(const gl_codec *c);
/* ids of text (malloc'd); false with a message (invalid UTF-8, or an unknown character for a character vocabulary
 * unless dropped is not NULL: then such characters are skipped and counted there) */
bool gl_codec_encode(gl_codec *c, const unsigned char *text, size_t len, int32_t **ids, size_t *n, size_t *dropped,
                     char *err, size_t err_len);
/* the bytes of one token into buf (room for 4 bytes for characters; a BPE token's bytes are returned by pointer) */
const unsigned char *gl_codec_token(const gl_codec *c, int32_t id, unsigned char buf[4], size_t *len);
void gl_codec_free(gl_codec *c);

#endif
