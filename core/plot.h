/* PNG line charts: several series, axes with ticks and numbers, axis labels, a title, a legend and an optional
 * log-scale y axis. Drawn into an RGB buffer and written with stb_image_write (to a temp name, then renamed);
 * text comes from stb_easy_font, so no font file is needed. */
#ifndef GRADLAB_PLOT_H
#define GRADLAB_PLOT_H

#include <stdbool.h>

typedef struct {
    const char *name;
    const float *x, *y; /* x may be NULL: 0, 1, 2, ... */
    int n;
    bool points; /* draw each point as a dot, without lines (a scatter plot) */
    const char *const *labels; /* NULL, or one text per point drawn beside it (e.g. the words of a projection) */
} gl_series;

typedef struct {
    const char *title, *xlabel, *ylabel;
    bool log_x, log_y;
    bool legend_bottom; /* the legend takes the corner where it hides the least data; this prefers bottom right on ties */
    int width, height; /* 0: 900 x 560 */
} gl_chart;

/* Returns false (and writes a reason into err) if the file cannot be written. Non-finite points are skipped. */
bool gl_plot_lines(const char *path, const gl_chart *chart, const gl_series *series, int n_series, char *err,
                   int err_len);

/* ---- a dashboard: line charts side by side ----
 * Panels in a grid of grid_cols columns (cells as large as the largest chart), under one title (may be NULL). */
typedef struct {
    gl_chart chart;
    const gl_series *series;
    int n_series;
} gl_panel;
bool gl_plot_panels(const char *path, const char *title, const gl_panel *panels, int n_panels, int grid_cols,
                    char *err, int err_len);

/* ---- grouped bars ---- */
/* One group of bars per label (groups[g], under the x axis), one bar per series in each group, in the series'
 * palette colour: series[s].y[g] is the height (series[s].n must be n_groups; x and labels are not used). The y axis
 * starts at 0; each bar's value is written above it when it fits. chart->log_* are ignored. */
bool gl_plot_bars(const char *path, const gl_chart *chart, const char *const *groups, int n_groups,
                  const gl_series *series, int n_series, char *err, int err_len);

/* ---- heatmaps ---- */
typedef struct {
    const char *title;
    const float *values; /* rows x cols, row-major */
    int rows, cols;
} gl_heatmap;

/* A grid of heatmaps (grid_cols per row) sharing one colour scale (min..max of all values, or [lo, hi] when
 * lo < hi) and one colour bar; labels (one short string per row/column, may be NULL) mark the axes of each map. */
bool gl_plot_heatmaps(const char *path, const char *title, const gl_heatmap *maps, int n_maps, int grid_cols,
                      const char *const *row_labels, const char *const *col_labels, float lo, float hi, char *err,
                      int err_len);

/* ---- image grids ---- */
/* n grey images (h x w bytes each, 0 = black) in a grid of `cols` columns, each scaled up `scale` times, with an
 * optional caption under each (NULL for none). */
bool gl_plot_image_grid(const char *path, const char *title, const unsigned char *images, int n, int h, int w,
                        int cols, int scale, const char *const *captions, char *err, int err_len);

#endif
