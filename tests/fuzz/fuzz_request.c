/* libFuzzer target for serve's request side (serve/api.c): any bytes as a chat or completions body must parse or
 * be refused with a message naming a field; and any bytes escaped by api_json_string must come out as a JSON string
 * that the JSON reader accepts (responses quote model output, which can be invalid UTF-8). `make fuzz`. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char message[512], jerr[128];
    const char *param;
    for (int chat = 0; chat < 2; chat++) {
        api_request r;
        if (!api_parse((const char *)data, size, chat, &r, message, sizeof message, &param) && !message[0]) abort();
        api_request_free(&r);
    }
    gl_strbuf b = {0};
    api_json_string(&b, (const char *)data, size);
    gl_json *back = gl_json_parse(b.p, b.len, jerr, sizeof jerr);
    if (!back || back->type != GL_JSON_STRING) abort();
    gl_json_free(back);
    gl_sb_free(&b);
    return 0;
}
