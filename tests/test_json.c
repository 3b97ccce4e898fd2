/* core/json: the reader on hand-written documents, and the writer read back by the reader. */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"
#include "json.h"

static gl_json *parse_file(const char *path) {
    unsigned char *data;
    size_t len;
    char err[256];
    cr_assert(gl_read_whole_file(path, &data, &len, err, sizeof err), "%s", err);
    gl_json *j = gl_json_parse((const char *)data, len, err, sizeof err);
    cr_assert(j, "%s: %s\n%s", path, err, data);
    free(data);
    return j;
}

Test(json, reader_parses_nested_values_and_names_the_offset_of_errors) {
    const char *doc = "{\"a\": [1, 2.5e3, -0.125], \"s\": \"x\\u00e9\\n\", \"t\": true, \"n\": null, \"o\": {}}";
    char err[128];
    gl_json *j = gl_json_parse(doc, strlen(doc), err, sizeof err);
    cr_assert(j, "%s", err);
    const gl_json *a = gl_json_get(j, "a");
    cr_assert(a && a->type == GL_JSON_ARRAY && a->count == 3);
    cr_assert(a->items[1].number == 2500.0 && a->items[2].number == -0.125);
    cr_assert_str_eq(gl_json_get(j, "s")->string, "x\xc3\xa9\n");
    cr_assert(gl_json_get(j, "t")->boolean && gl_json_get(j, "n")->type == GL_JSON_NULL);
    cr_assert(gl_json_get(j, "o")->type == GL_JSON_OBJECT && gl_json_get(j, "o")->count == 0);
    gl_json_free(j);
    cr_assert_null(gl_json_parse("{\"a\": [1, 2,]}", 14, err, sizeof err));
    cr_assert(strstr(err, "at byte 12"), "%s", err);
}

Test(json, writer_output_reads_back_with_escapes_nesting_and_null_for_nan) {
    char path[] = "/tmp/gradlab_json_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    gl_json_writer w;
    cr_assert(gl_jw_open(&w, path));
    gl_jw_object(&w, NULL);
    gl_jw_number(&w, "accuracy", 0.97125);
    gl_jw_number(&w, "not a number", NAN);
    gl_jw_number(&w, "infinite", INFINITY);
    gl_jw_int(&w, "words", 2040000123LL);
    gl_jw_string(&w, "quote \"and\" slash \\", "line\nbreak\ttab \x01 caf\xc3\xa9");
    gl_jw_bool(&w, "ok", true);
    gl_jw_array(&w, "curve");
    for (int i = 0; i < 3; i++) gl_jw_number(&w, NULL, i / 4.0);
    gl_jw_end(&w);
    gl_jw_object(&w, "empty");
    gl_jw_end(&w);
    gl_jw_array(&w, "sections");
    gl_jw_object(&w, NULL);
    gl_jw_int(&w, "questions", 506);
    gl_jw_end(&w);
    gl_jw_end(&w);
    gl_jw_end(&w);
    cr_assert(gl_jw_close(&w));
    gl_json *j = parse_file(path);
    cr_assert(fabs(gl_json_get(j, "accuracy")->number - 0.97125) < 1e-12);
    cr_assert(gl_json_get(j, "not a number")->type == GL_JSON_NULL && gl_json_get(j, "infinite")->type == GL_JSON_NULL);
    cr_assert(gl_json_get(j, "words")->number == 2040000123.0);
    cr_assert_str_eq(gl_json_get(j, "quote \"and\" slash \\")->string, "line\nbreak\ttab \x01 caf\xc3\xa9");
    cr_assert(gl_json_get(j, "ok")->boolean);
    const gl_json *c = gl_json_get(j, "curve");
    cr_assert(c->count == 3 && c->items[2].number == 0.5);
    cr_assert(gl_json_get(j, "empty")->count == 0);
    cr_assert(gl_json_get(gl_json_get(j, "sections")->items, "questions")->number == 506);
    gl_json_free(j);
    remove(path);
}

Test(json, an_unfinished_document_is_not_committed) {
    char path[] = "/tmp/gradlab_json_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    remove(path);
    gl_json_writer w;
    cr_assert(gl_jw_open(&w, path));
    gl_jw_object(&w, NULL);
    gl_jw_number(&w, "x", 1);
    cr_assert_not(gl_jw_close(&w));
    cr_assert(access(path, F_OK) != 0, "nothing at the path");
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cr_assert(access(tmp, F_OK) != 0, "no temporary left behind");
}

static void key_inside_array(void) {
    gl_json_writer w = {0};
    w.f = tmpfile(); /* an anonymous file: nothing is left behind by the abort */
    gl_jw_array(&w, NULL);
    gl_jw_number(&w, "key", 1);
}
Test(json, a_key_inside_an_array_stops_with_a_message, .signal = SIGABRT) { key_inside_array(); }
