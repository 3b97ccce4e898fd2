/* Command-line numbers for the programs: a flag's value parsed whole, range-checked, or the program exits with
 * status 2 and a message naming the program, the flag, the range and what was given. */
#ifndef GRADLAB_CLI_H
#define GRADLAB_CLI_H

double gl_flag_number(const char *prog, const char *flag, const char *value, double lo, double hi);
/* as gl_flag_number, and the value must be a whole number */
int gl_flag_int(const char *prog, const char *flag, const char *value, double lo, double hi);
/* a whole number in [lo, hi] within [0, 2^53] (seeds): "2.5" is refused, not truncated */
#include <stdint.h>
uint64_t gl_flag_u64(const char *prog, const char *flag, const char *value, double lo, double hi);

/* Flushes stdout and, if anything written to it failed (a full disk, a closed pipe), says so naming the program and
 * exits with status 1: a program's results are never lost silently. Call it before returning from main. */
void gl_stdout_check(const char *prog);

/* Exercise mode (tools/exercise.py): the stub that replaces a lab's solution block calls this; it says what to
 * write and where, and stops the program (a check running it fails). */
_Noreturn void gl_exercise_todo(const char *file, const char *func, const char *what);

#endif
