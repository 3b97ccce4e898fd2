/* Programming errors stop with exit status 1 and a message naming the op and the shapes. */
#include "testutil.h"

static void matmul_mismatch(void) { gl_matmul(gl_zeros(GL_DIMS(2, 3)), gl_zeros(GL_DIMS(4, 5))); }
static void add_mismatch(void) { gl_add(gl_zeros(GL_DIMS(2, 3)), gl_zeros(GL_DIMS(4))); }
static void reshape_mismatch(void) { gl_reshape(gl_zeros(GL_DIMS(2, 3)), GL_DIMS(4, -1)); }
static void bad_target(void) {
    int32_t t[2] = {0, 9};
    gl_cross_entropy(gl_zeros(GL_DIMS(2, 5)), t, -1);
}
static void bad_axis(void) { gl_sum(gl_zeros(GL_DIMS(2, 3)), 2, false); }
static void bad_layernorm(void) { gl_layernorm(gl_zeros(GL_DIMS(2, 3)), gl_zeros(GL_DIMS(4)), NULL, 1e-5f); }
static void bad_embedding_id(void) {
    int32_t ids[3] = {0, 1, 7};
    gl_embedding(gl_zeros(GL_DIMS(5, 2)), ids, GL_DIMS(3));
}
static void bad_backward(void) { gl_backward(gl_zeros(GL_DIMS(2))); }

/* Criterion's own exit-code checks */
Test(errors, matmul_shape_mismatch_exits_1, .exit_code = 1) { matmul_mismatch(); }
Test(errors, broadcast_mismatch_exits_1, .exit_code = 1) { add_mismatch(); }

/* and the messages, read from the child's stderr */
Test(errors, messages_name_the_op_and_shapes) {
    expect_fatal(matmul_mismatch, (const char *[]){"matmul", "[2, 3]", "[4, 5]", NULL});
    expect_fatal(add_mismatch, (const char *[]){"add", "[2, 3]", "[4]", "broadcast", NULL});
    expect_fatal(reshape_mismatch, (const char *[]){"reshape", "[2, 3]", "[4, -1]", NULL});
    expect_fatal(bad_target, (const char *[]){"cross_entropy", "target 9", "row 1", "[0, 5)", NULL});
    expect_fatal(bad_axis, (const char *[]){"sum", "axis 2", "[2, 3]", NULL});
    expect_fatal(bad_layernorm, (const char *[]){"layernorm", "[4]", "[2, 3]", NULL});
    expect_fatal(bad_embedding_id, (const char *[]){"embedding", "id 7", "position 2", NULL});
    expect_fatal(bad_backward, (const char *[]){"backward", "one element", NULL});
}

/* Input files must be regular files: a directory reported a size of 2^63 and a FIFO blocked forever. */
#include <sys/stat.h>

#include "io.h"

Test(errors, reading_a_directory_or_a_fifo_is_refused_at_once) {
    char err[256];
    unsigned char *data;
    size_t len;
    cr_assert_not(gl_read_whole_file("tests", &data, &len, err, sizeof err));
    cr_assert(strstr(err, "'tests' is not a regular file"), "%s", err);
    mkdir("out", 0755), mkdir("out/test", 0755);
    remove("out/test/fifo");
    cr_assert_eq(mkfifo("out/test/fifo", 0600), 0);
    cr_assert_not(gl_read_whole_file("out/test/fifo", &data, &len, err, sizeof err)); /* returns: no writer needed */
    cr_assert(strstr(err, "is not a regular file"), "%s", err);
    remove("out/test/fifo");
    cr_assert(gl_read_whole_file("README.md", &data, &len, err, sizeof err) && len > 100, "%s", err);
    free(data);
}
