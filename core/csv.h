/* Numeric CSV files with a header line (the tabular data of lab 01). */
#ifndef GRADLAB_CSV_H
#define GRADLAB_CSV_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    int rows, cols;
    char **names;  /* cols column names */
    double *values; /* rows x cols, row-major */
} gl_csv;

/* false with a message naming the line and column of the first problem (missing column, not a number, ...) */
bool gl_csv_read(const char *path, gl_csv *out, char *err, size_t err_len);
/* index of a column by name, or -1 */
int gl_csv_column(const gl_csv *t, const char *name);
void gl_csv_free(gl_csv *t);

#endif
