#include "plot.h"

#include "io.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#include <stb/stb_image_write.h>
#include <stb/stb_easy_font.h>
#pragma GCC diagnostic pop

static void write_to_file(void *f, void *data, int size) { fwrite(data, 1, (size_t)size, f); }

typedef struct {
    int w, h;
    uint8_t *px;
} canvas;

static const uint8_t palette[][3] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40},
                                     {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {127, 127, 127}};

static void put(canvas *c, int x, int y, const uint8_t rgb[3]) {
    if (x < 0 || y < 0 || x >= c->w || y >= c->h) return;
    memcpy(c->px + ((size_t)y * c->w + x) * 3, rgb, 3);
}

static void fill_rect(canvas *c, int x0, int y0, int x1, int y1, const uint8_t rgb[3]) {
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) put(c, x, y, rgb);
}

/* Bresenham, `thick` pixels wide */
static void line(canvas *c, int x0, int y0, int x1, int y1, const uint8_t rgb[3], int thick) {
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, e = dx + dy;
    for (;;) {
        for (int a = 0; a < thick; a++)
            for (int b = 0; b < thick; b++) put(c, x0 + a - thick / 2, y0 + b - thick / 2, rgb);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * e;
        if (e2 >= dy) e += dy, x0 += sx;
        if (e2 <= dx) e += dx, y0 += sy;
    }
}

/* stb_easy_font text at (x, y) top-left, scaled; returns its width in pixels. vertical: rotated 90 degrees. */
static int text(canvas *c, int x, int y, const char *s, int scale, bool vertical, const uint8_t rgb[3]) {
    static char buf[60000];
    int quads = stb_easy_font_print(0, 0, (char *)s, NULL, buf, sizeof buf);
    float *v = (float *)buf; /* 4 vertices per quad: x, y, z, color (16 bytes each) */
    for (int q = 0; q < quads; q++) {
        float qx0 = v[q * 16 + 0], qy0 = v[q * 16 + 1], qx1 = v[q * 16 + 8], qy1 = v[q * 16 + 9];
        for (int yy = (int)(qy0 * scale); yy < (int)(qy1 * scale); yy++)
            for (int xx = (int)(qx0 * scale); xx < (int)(qx1 * scale); xx++)
                vertical ? put(c, x + yy, y - xx, rgb) : put(c, x + xx, y + yy, rgb);
    }
    return stb_easy_font_width((char *)s) * scale;
}

/* "nice" tick step: 1, 2 or 5 times a power of ten, giving about `target` ticks */
static double tick_step(double range, int target) {
    double raw = range / target, p = pow(10.0, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

/* Tick positions in axis units for [lo, hi]: whole multiples of a 1-2-5 step (k * step, not a running sum, so 0 is
 * 0); on a log axis (units of log10) powers of ten, and within a range of under two decades also 2x and 5x of
 * each power (or every 1x..9x) so that a short log axis still gets at least two labelled ticks. */
static int axis_ticks(double lo, double hi, int target, bool log_axis, double *t, int max) {
    int n = 0;
    if (!log_axis || hi - lo >= 2) {
        double step = log_axis ? fmax(1.0, floor(tick_step(hi - lo, target))) : tick_step(hi - lo, target);
        for (double k = ceil(lo / step), v = k * step; v <= hi + 1e-9 * step && n < max; k++, v = k * step) t[n++] = v;
        return n;
    }
    static const double sparse[3] = {1, 2, 5}, dense[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    for (int pass = 0; pass < 2 && n < 2; pass++) {
        const double *m = pass ? dense : sparse;
        int nm = pass ? 9 : 3;
        n = 0;
        for (double d = floor(lo); d <= hi && n < max; d++)
            for (int i = 0; i < nm && n < max; i++) {
                double v = d + log10(m[i]);
                if (v >= lo - 1e-9 && v <= hi + 1e-9) t[n++] = v;
            }
    }
    return n;
}

static void format_tick(char *buf, size_t n, double v) {
    if (v != 0 && (fabs(v) >= 1e5 || fabs(v) < 1e-3)) snprintf(buf, n, "%.0e", v);
    else snprintf(buf, n, "%g", fabs(v) < 1e-12 ? 0.0 : v);
}

/* writes the canvas through gl_atomic (never half a file); frees the pixels */
static bool write_png(const char *path, canvas *cv, char *err, int err_len) {
    canvas c = *cv;
    gl_atomic file;
    FILE *f = gl_atomic_open(&file, path);
    if (!f) {
        free(c.px);
        return snprintf(err, (size_t)err_len, "cannot create a file beside '%s': %s", path, strerror(errno)), false;
    }
    int ok = stbi_write_png_to_func(write_to_file, f, c.w, c.h, 3, c.px, c.w * 3);
    free(c.px);
    if (ok && gl_atomic_commit(&file)) return true;
    int e = file.err ? file.err : errno;
    gl_atomic_abort(&file);
    return snprintf(err, (size_t)err_len, "cannot write '%s': %s", path, strerror(e ? e : EIO)), false;
}

/* the i-th point of a series in axis units (log10 on a logarithmic axis); false if it cannot be drawn */
static bool point_at(const gl_chart *ch, const gl_series *s, int i, double *x, double *y) {
    *x = s->x ? s->x[i] : i;
    *y = s->y[i];
    if (!isfinite(*x) || !isfinite(*y) || (ch->log_y && *y <= 0) || (ch->log_x && *x <= 0)) return false;
    if (ch->log_x) *x = log10(*x);
    if (ch->log_y) *y = log10(*y);
    return true;
}

/* draws a line chart into a fresh canvas (false: out of memory) */
static bool render_lines(canvas *out, const gl_chart *ch, const gl_series *series, int n_series) {
    canvas c = {ch->width > 0 ? ch->width : 900, ch->height > 0 ? ch->height : 560, NULL};
    c.px = malloc((size_t)c.w * c.h * 3);
    if (!c.px) return false;
    memset(c.px, 255, (size_t)c.w * c.h * 3);
    const uint8_t black[3] = {0, 0, 0}, grey[3] = {225, 225, 225}, dark[3] = {90, 90, 90};
    int left = 100, right = 30, top = 50, bottom = 60;
    int pw = c.w - left - right, ph = c.h - top - bottom;

    /* data range */
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int s = 0; s < n_series; s++)
        for (int i = 0; i < series[s].n; i++) {
            double x, y;
            if (!point_at(ch, &series[s], i, &x, &y)) continue;
            xmin = fmin(xmin, x), xmax = fmax(xmax, x), ymin = fmin(ymin, y), ymax = fmax(ymax, y);
        }
    if (!(xmin <= xmax)) xmin = 0, xmax = 1, ymin = 0, ymax = 1;
    if (xmax == xmin) xmax = xmin + 1;
    if (ymax == ymin) ymax = ymin + 1;
    double ypad = 0.05 * (ymax - ymin);
    ymin -= ypad, ymax += ypad;
    bool scatter = n_series > 0; /* a scatter plot's extreme points get room from the axes too */
    for (int s = 0; s < n_series; s++) scatter &= series[s].points;
    if (scatter && !ch->log_x) {
        double xpad = 0.05 * (xmax - xmin);
        xmin -= xpad, xmax += xpad;
    }
#define PX(x) (left + (int)lround(((x) - xmin) / (xmax - xmin) * pw))
#define PY(y) (top + ph - (int)lround(((y) - ymin) / (ymax - ymin) * ph))
#define PXD(x) (left + ((x) - xmin) / (xmax - xmin) * pw)
#define PYD(y) (top + ph - ((y) - ymin) / (ymax - ymin) * ph)

    /* grid, ticks and numbers */
    char lab[32];
    double t[64];
    int nt = axis_ticks(xmin, xmax, 8, ch->log_x, t, 64);
    for (int i = 0; i < nt; i++) {
        int x = PX(t[i]);
        line(&c, x, top, x, top + ph, grey, 1);
        line(&c, x, top + ph, x, top + ph + 5, black, 1);
        format_tick(lab, sizeof lab, ch->log_x ? pow(10.0, t[i]) : t[i]);
        text(&c, x - stb_easy_font_width(lab), top + ph + 9, lab, 2, false, black);
    }
    nt = axis_ticks(ymin, ymax, 6, ch->log_y, t, 64);
    for (int i = 0; i < nt; i++) {
        int y = PY(t[i]);
        line(&c, left, y, left + pw, y, grey, 1);
        line(&c, left - 5, y, left, y, black, 1);
        format_tick(lab, sizeof lab, ch->log_y ? pow(10.0, t[i]) : t[i]);
        text(&c, left - 9 - 2 * stb_easy_font_width(lab), y - 6, lab, 2, false, black);
    }
    line(&c, left, top, left, top + ph, black, 2);
    line(&c, left, top + ph, left + pw, top + ph, black, 2);

    /* series */
    for (int s = 0; s < n_series; s++) {
        const uint8_t *col = palette[s % 8];
        int px = 0, py = 0, have = 0;
        for (int i = 0; i < series[s].n; i++) {
            double x, y;
            if (!point_at(ch, &series[s], i, &x, &y)) {
                have = 0;
                continue;
            }
            int qx = PX(x), qy = PY(y);
            int dot = series[s].n <= 16 ? 4 : 2; /* few points: larger dots */
            if (series[s].points) fill_rect(&c, qx - dot, qy - dot, qx + dot + 1, qy + dot + 1, col);
            if (series[s].labels && series[s].labels[i]) text(&c, qx + 5, qy - 6, series[s].labels[i], 1, false, col);
            if (have && !series[s].points) line(&c, px, py, qx, qy, col, 2); /* a scatter's points stay unjoined */
            if (!series[s].points && series[s].n <= 16) fill_rect(&c, qx - 3, qy - 3, qx + 4, qy + 4, col); /* mark few points */
            px = qx, py = qy, have = 1;
        }
    }

    /* labels, title, legend */
    if (ch->title) text(&c, left + pw / 2 - stb_easy_font_width((char *)ch->title) * 3 / 2, 12, ch->title, 3, false, black);
    if (ch->xlabel) text(&c, left + pw / 2 - stb_easy_font_width((char *)ch->xlabel), c.h - 24, ch->xlabel, 2, false, dark);
    if (ch->ylabel) text(&c, 10, top + ph / 2 + stb_easy_font_width((char *)ch->ylabel), ch->ylabel, 2, true, dark);
    int named = 0, name_w = 0;
    for (int s = 0; s < n_series; s++)
        if (series[s].name) named++, name_w = fmax(name_w, 2 * stb_easy_font_width((char *)series[s].name));
    /* the legend goes in the corner its box hides the least data in (ties: top right, or bottom right when
     * legend_bottom asks for it) */
    int box_w = name_w + 56, box_h = 24 * named + 8, best = 0;
    long best_hits = -1;
    for (int k = 0; k < 4 && named; k++) {
        int corner = ch->legend_bottom ? (k + 1) % 4 : k; /* 0 top right, 1 bottom right, 2 top left, 3 bottom left */
        int bx0 = corner < 2 ? left + pw - box_w : left + 4, by0 = corner % 2 ? top + ph - box_h - 6 : top + 6;
        long hits = 0;
        for (int s = 0; s < n_series; s++) {
            double px0 = 0, py0 = 0;
            int have = 0;
            for (int i = 0; i < series[s].n; i++) {
                double x, y;
                if (!point_at(ch, &series[s], i, &x, &y)) {
                    have = 0;
                    continue;
                }
                double qx = PXD(x), qy = PYD(y);
                int steps = have && !series[s].points ? 16 : 1; /* a line's segments count along their length */
                for (int t = 1; t <= steps; t++) {
                    double fx = steps == 1 ? qx : px0 + (qx - px0) * t / steps, fy = steps == 1 ? qy : py0 + (qy - py0) * t / steps;
                    hits += fx >= bx0 && fx <= bx0 + box_w && fy >= by0 && fy <= by0 + box_h;
                }
                px0 = qx, py0 = qy, have = 1;
            }
        }
        if (best_hits < 0 || hits < best_hits) best_hits = hits, best = corner;
    }
    int ly = best % 2 ? top + ph - box_h - 2 : top + 10;
    for (int s = 0; s < n_series; s++) {
        if (!series[s].name) continue;
        int w = 2 * stb_easy_font_width((char *)series[s].name);
        int lx = best < 2 ? left + pw - w - 50 : left + 4 + 36;
        fill_rect(&c, lx - 6, ly - 4, best < 2 ? left + pw - 4 : lx + w + 10, ly + 20, (const uint8_t[3]){255, 255, 255});
        if (series[s].points) fill_rect(&c, lx + 8, ly + 3, lx + 17, ly + 12, palette[s % 8]); /* a scatter's dot */
        else line(&c, lx, ly + 7, lx + 24, ly + 7, palette[s % 8], 3);
        text(&c, lx + 30, ly, series[s].name, 2, false, black);
        ly += 24;
    }

#undef PX
#undef PY
#undef PXD
#undef PYD
    *out = c;
    return true;
}

bool gl_plot_lines(const char *path, const gl_chart *ch, const gl_series *series, int n_series, char *err,
                   int err_len) {
    canvas c;
    if (!render_lines(&c, ch, series, n_series)) return snprintf(err, (size_t)err_len, "out of memory"), false;
    return write_png(path, &c, err, err_len);
}

bool gl_plot_panels(const char *path, const char *title, const gl_panel *panels, int n_panels, int grid_cols,
                    char *err, int err_len) {
    if (grid_cols < 1) grid_cols = 1;
    int rows = (n_panels + grid_cols - 1) / grid_cols, cell_w = 0, cell_h = 0, head = title ? 50 : 0;
    for (int p = 0; p < n_panels; p++) {
        const gl_chart *ch = &panels[p].chart;
        cell_w = fmax(cell_w, ch->width > 0 ? ch->width : 900), cell_h = fmax(cell_h, ch->height > 0 ? ch->height : 560);
    }
    canvas big = {cell_w * grid_cols, head + cell_h * rows, NULL};
    big.px = malloc((size_t)big.w * big.h * 3);
    if (!big.px) return snprintf(err, (size_t)err_len, "out of memory"), false;
    memset(big.px, 255, (size_t)big.w * big.h * 3);
    for (int p = 0; p < n_panels; p++) {
        canvas c;
        if (!render_lines(&c, &panels[p].chart, panels[p].series, panels[p].n_series)) {
            free(big.px);
            return snprintf(err, (size_t)err_len, "out of memory"), false;
        }
        int x0 = (p % grid_cols) * cell_w, y0 = head + (p / grid_cols) * cell_h;
        for (int y = 0; y < c.h; y++) memcpy(big.px + ((size_t)(y0 + y) * big.w + x0) * 3, c.px + (size_t)y * c.w * 3, (size_t)c.w * 3);
        free(c.px);
    }
    if (title) text(&big, big.w / 2 - stb_easy_font_width((char *)title) * 2, 10, title, 4, false, (const uint8_t[3]){0, 0, 0});
    return write_png(path, &big, err, err_len);
}

/* a perceptual dark-blue -> green -> yellow ramp (after viridis), t in [0, 1] */
bool gl_plot_bars(const char *path, const gl_chart *ch, const char *const *groups, int n_groups,
                  const gl_series *series, int n_series, char *err, int err_len) {
    for (int s = 0; s < n_series; s++)
        if (series[s].n != n_groups)
            return snprintf(err, (size_t)err_len, "bar series '%s' has %d values for %d groups",
                            series[s].name ? series[s].name : "?", series[s].n, n_groups), false;
    canvas c = {ch->width > 0 ? ch->width : 900, ch->height > 0 ? ch->height : 560, NULL};
    c.px = malloc((size_t)c.w * c.h * 3);
    if (!c.px) return snprintf(err, (size_t)err_len, "out of memory"), false;
    memset(c.px, 255, (size_t)c.w * c.h * 3);
    const uint8_t black[3] = {0, 0, 0}, grey[3] = {225, 225, 225}, dark[3] = {90, 90, 90};
    int named = 0;
    for (int s = 0; s < n_series; s++) named += series[s].name != NULL;
    int left = 100, right = 30, top = 50 + 24 * ((named + 3) / 4), bottom = 60; /* the legend runs above the plot */
    int pw = c.w - left - right, ph = c.h - top - bottom;
    double ymax = 0;
    for (int s = 0; s < n_series; s++)
        for (int g = 0; g < n_groups; g++)
            if (isfinite(series[s].y[g])) ymax = fmax(ymax, series[s].y[g]);
    ymax = ymax > 0 ? ymax * 1.1 : 1;
#define PY(y) (top + ph - (int)lround((y) / ymax * ph))
    char lab[32];
    double t[64];
    int nt = axis_ticks(0, ymax, 6, false, t, 64);
    for (int i = 0; i < nt; i++) {
        int y = PY(t[i]);
        line(&c, left, y, left + pw, y, grey, 1);
        line(&c, left - 5, y, left, y, black, 1);
        format_tick(lab, sizeof lab, t[i]);
        text(&c, left - 9 - 2 * stb_easy_font_width(lab), y - 6, lab, 2, false, black);
    }
    double group_w = n_groups > 0 ? (double)pw / n_groups : pw, bar_w = group_w * 0.8 / (n_series > 0 ? n_series : 1);
    for (int g = 0; g < n_groups; g++) {
        double gx = left + g * group_w + group_w * 0.1;
        for (int s = 0; s < n_series; s++) {
            double v = series[s].y[g];
            if (!isfinite(v) || v < 0) continue;
            int x0 = (int)lround(gx + s * bar_w), x1 = (int)lround(gx + (s + 1) * bar_w) - 1, y0 = PY(v);
            fill_rect(&c, x0, y0, x1, top + ph, palette[s % 8]);
            format_tick(lab, sizeof lab, v < 10 ? round(v * 1000) / 1000 : round(v * 10) / 10);
            if (stb_easy_font_width(lab) <= x1 - x0) text(&c, (x0 + x1) / 2 - stb_easy_font_width(lab) / 2, y0 - 10, lab, 1, false, dark);
        }
        if (groups && groups[g]) {
            int scale = 2 * stb_easy_font_width((char *)groups[g]) <= group_w ? 2 : 1;
            text(&c, (int)(gx + group_w * 0.4) - scale * stb_easy_font_width((char *)groups[g]) / 2, top + ph + 9, groups[g], scale,
                 false, black);
        }
    }
    line(&c, left, top, left, top + ph, black, 2);
    line(&c, left, top + ph, left + pw, top + ph, black, 2);
    if (ch->title) text(&c, left + pw / 2 - stb_easy_font_width((char *)ch->title) * 3 / 2, 12, ch->title, 3, false, black);
    if (ch->xlabel) text(&c, left + pw / 2 - stb_easy_font_width((char *)ch->xlabel), c.h - 24, ch->xlabel, 2, false, dark);
    if (ch->ylabel) text(&c, 10, top + ph / 2 + stb_easy_font_width((char *)ch->ylabel), ch->ylabel, 2, true, dark);
    for (int s = 0, k = 0; s < n_series; s++) { /* four legend entries per row above the plot */
        if (!series[s].name) continue;
        int lx = left + (k % 4) * (pw / 4), ly = 44 + 24 * (k / 4);
        fill_rect(&c, lx, ly + 2, lx + 16, ly + 14, palette[s % 8]);
        text(&c, lx + 22, ly, series[s].name, 2, false, black);
        k++;
    }
#undef PY
    return write_png(path, &c, err, err_len);
}

static void ramp(float t, uint8_t rgb[3]) {
    static const float stops[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    float x = t * 4;
    int i = x >= 4 ? 3 : (int)x;
    float f = x - i;
    for (int k = 0; k < 3; k++) rgb[k] = (uint8_t)(stops[i][k] + f * (stops[i + 1][k] - stops[i][k]));
}

bool gl_plot_heatmaps(const char *path, const char *title, const gl_heatmap *maps, int n_maps, int grid_cols,
                      const char *const *row_labels, const char *const *col_labels, float lo, float hi, char *err,
                      int err_len) {
    if (n_maps < 1 || grid_cols < 1) return snprintf(err, (size_t)err_len, "no heatmaps to draw"), false;
    int rows = maps[0].rows, cols = maps[0].cols;
    int cell = rows > 48 || cols > 48 ? 6 : 12, pad = 40, label = row_labels ? 16 : 0;
    int mw = cols * cell, mh = rows * cell;
    int grid_rows = (n_maps + grid_cols - 1) / grid_cols;
    canvas c = {pad + grid_cols * (label + mw + pad) + 90, 60 + grid_rows * (mh + label + 2 * pad), NULL};
    c.px = malloc((size_t)c.w * c.h * 3);
    if (!c.px) return snprintf(err, (size_t)err_len, "out of memory"), false;
    memset(c.px, 255, (size_t)c.w * c.h * 3);
    const uint8_t black[3] = {0, 0, 0};
    if (!(lo < hi)) {
        lo = INFINITY, hi = -INFINITY;
        for (int k = 0; k < n_maps; k++)
            for (int i = 0; i < maps[k].rows * maps[k].cols; i++)
                if (isfinite(maps[k].values[i])) lo = fminf(lo, maps[k].values[i]), hi = fmaxf(hi, maps[k].values[i]);
        if (!(lo < hi)) hi = lo + 1;
    }
    if (title) text(&c, pad, 14, title, 3, false, black);
    for (int k = 0; k < n_maps; k++) {
        int ox = pad + (k % grid_cols) * (label + mw + pad) + label, oy = 60 + (k / grid_cols) * (mh + label + 2 * pad) + 16;
        if (maps[k].title) text(&c, ox, oy - 16, maps[k].title, 2, false, black);
        for (int i = 0; i < maps[k].rows; i++)
            for (int j = 0; j < maps[k].cols; j++) {
                uint8_t rgb[3];
                float v = maps[k].values[i * maps[k].cols + j];
                ramp(isfinite(v) ? (v - lo) / (hi - lo) : 0.0f, rgb);
                fill_rect(&c, ox + j * cell, oy + i * cell, ox + (j + 1) * cell, oy + (i + 1) * cell, rgb);
            }
        for (int i = 0; row_labels && i < maps[k].rows; i++) text(&c, ox - label + 2, oy + i * cell, row_labels[i], 1, false, black);
        for (int j = 0; col_labels && j < maps[k].cols; j++) text(&c, ox + j * cell + 2, oy + mh + 2, col_labels[j], 1, false, black);
    }
    /* colour bar */
    int bx = c.w - 70, by = 60, bh = c.h - 120 < 300 ? c.h - 120 : 300;
    for (int y = 0; y < bh; y++) {
        uint8_t rgb[3];
        ramp(1.0f - (float)y / (float)(bh - 1), rgb);
        fill_rect(&c, bx, by + y, bx + 16, by + y + 1, rgb);
    }
    char lab[32];
    format_tick(lab, sizeof lab, hi);
    text(&c, bx + 20, by - 4, lab, 1, false, black);
    format_tick(lab, sizeof lab, lo);
    text(&c, bx + 20, by + bh - 6, lab, 1, false, black);
    return write_png(path, &c, err, err_len);
}

bool gl_plot_image_grid(const char *path, const char *title, const unsigned char *images, int n, int h, int w,
                        int cols, int scale, const char *const *captions, char *err, int err_len) {
    if (n < 1 || cols < 1) return snprintf(err, (size_t)err_len, "no images to draw"), false;
    int rows = (n + cols - 1) / cols, cw = w * scale + 12, ch = h * scale + 24;
    canvas c = {cols * cw + 20, rows * ch + 50, NULL};
    c.px = malloc((size_t)c.w * c.h * 3);
    if (!c.px) return snprintf(err, (size_t)err_len, "out of memory"), false;
    memset(c.px, 255, (size_t)c.w * c.h * 3);
    const uint8_t black[3] = {0, 0, 0};
    if (title) text(&c, 10, 12, title, 2, false, black);
    for (int k = 0; k < n; k++) {
        int ox = 10 + (k % cols) * cw, oy = 40 + (k / cols) * ch;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                uint8_t v = (uint8_t)(255 - images[(size_t)k * h * w + y * w + x]); /* ink dark on white */
                uint8_t rgb[3] = {v, v, v};
                fill_rect(&c, ox + x * scale, oy + y * scale, ox + (x + 1) * scale, oy + (y + 1) * scale, rgb);
            }
        if (captions && captions[k]) text(&c, ox, oy + h * scale + 4, captions[k], 1, false, black);
    }
    return write_png(path, &c, err, err_len);
}
