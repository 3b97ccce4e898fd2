/* The scorecard of `make eval`: named metrics (suite.detector.metric, e.g. "spam.logreg.f1") checked against a
 * checked-in thresholds file, so that a change that makes a measured number worse than its floor (or a rate of
 * mistakes higher than its ceiling), beyond a tolerance, fails the run.
 *
 * The thresholds file (eval/thresholds.json; docs/evaluation.md):
 *   {"metrics": {"spam.logreg.f1": {"min": 0.97, "tolerance": 0.005},
 *                "injection.rules.questions_fp_rate": {"max": 0}, ...}}
 * A metric regresses when value < min - tolerance or value > max + tolerance (tolerance 0 when absent). A metric the
 * file names that the run did not measure is "not measured": a failure, unless its suite (the name's first part) was
 * skipped, with a reason, by the run. */
#ifndef GRADLAB_SCORECARD_H
#define GRADLAB_SCORECARD_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char **name;
    double *value;
    int n, cap;
    char **skipped, **skip_reason; /* suites not run, and why */
    int n_skipped;
} scorecard;

void sc_set(scorecard *s, const char *name, double value);   /* adds, or replaces a value of the same name */
bool sc_get(const scorecard *s, const char *name, double *value);
void sc_skip(scorecard *s, const char *suite, const char *reason);
const char *sc_skip_reason(const scorecard *s, const char *suite); /* NULL if the suite was not skipped */
void sc_free(scorecard *s);

typedef enum { SC_PASS, SC_REGRESSED, SC_NOT_MEASURED, SC_SKIPPED } sc_status;

typedef struct {
    char *name;
    bool has_min, has_max;
    double min, max, tolerance, value; /* value: NAN when not measured */
    sc_status status;
} sc_check;

/* Every metric of the thresholds file, checked; false with "FILE: what is wrong" for a file that is not of the form
 * above (an unknown key, a bound that is not a number, a metric with neither min nor max). */
bool sc_check_file(const scorecard *s, const char *path, sc_check **checks, int *n, char *err, size_t err_len);
void sc_checks_free(sc_check *checks, int n);
/* how many checks failed (regressed or not measured) */
int sc_failures(const sc_check *checks, int n);

#endif
