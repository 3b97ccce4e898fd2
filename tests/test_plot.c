/* PNG charts: decode what core/plot.c wrote (stb_image) and check its size and known pixels. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#include <stb/stb_image.h>
/* stb_image declares static functions it defines only in other configurations; gcc reports those at the end
 * of the file, so that one warning stays off for this test */
#pragma GCC diagnostic pop
#pragma GCC diagnostic ignored "-Wunused-function"

#include "plot.h"
#include "testutil.h"

static unsigned char *load(const char *path, int *w, int *h) {
    int n;
    unsigned char *px = stbi_load(path, w, h, &n, 3);
    cr_assert(px, "%s is not a readable PNG", path);
    return px;
}

static bool near(const unsigned char *p, int r, int g, int b) { return abs(p[0] - r) < 8 && abs(p[1] - g) < 8 && abs(p[2] - b) < 8; }

Test(plot, line_chart_has_its_size_axes_and_series_colour) {
    char path[64], err[128];
    snprintf(path, sizeof path, "/tmp/gradlab_plot_%d.png", (int)getpid());
    float x[3] = {0, 1, 2}, y[3] = {0, 1, 2};
    gl_series s[1] = {{"diagonal", x, y, 3, false, NULL}};
    gl_chart c = {.title = "t", .xlabel = "x", .ylabel = "y", .width = 400, .height = 300};
    cr_assert(gl_plot_lines(path, &c, s, 1, err, sizeof err), "%s", err);
    int w, h;
    unsigned char *px = load(path, &w, &h);
    cr_assert(w == 400 && h == 300);
    cr_assert(near(px, 255, 255, 255), "the corner is background white");
    /* the plot area spans x in [100, 370), y in [50, 240): the y axis is black at x = 100 */
    cr_assert(near(px + (150 * w + 100) * 3, 0, 0, 0), "y axis at x=100");
    /* the first series is drawn in the first palette colour (31, 119, 180) along the diagonal's middle */
    int found = 0;
    for (int dy = -3; dy <= 3 && !found; dy++)
        for (int dx = -3; dx <= 3 && !found; dx++) {
            int xm = 100 + 135 + dx, ym = 50 + 95 + dy;
            found = near(px + (ym * w + xm) * 3, 31, 119, 180);
        }
    cr_assert(found, "the series line passes through the middle of the plot");
    stbi_image_free(px);
    remove(path);
}

Test(plot, heatmap_maps_low_and_high_to_the_ends_of_the_colour_ramp) {
    char path[64], err[128];
    snprintf(path, sizeof path, "/tmp/gradlab_heat_%d.png", (int)getpid());
    float v[4] = {0, 1, 1, 0};
    gl_heatmap m[1] = {{"m", v, 2, 2}};
    cr_assert(gl_plot_heatmaps(path, "h", m, 1, 1, NULL, NULL, 0, 1, err, sizeof err), "%s", err);
    int w, h;
    unsigned char *px = load(path, &w, &h);
    /* cells are 12 px; the map starts at (40, 76): cell (0,0) = 0 -> dark purple, cell (0,1) = 1 -> yellow */
    cr_assert(near(px + ((76 + 6) * w + 40 + 6) * 3, 68, 1, 84), "low value is the ramp's dark end");
    cr_assert(near(px + ((76 + 6) * w + 40 + 18) * 3, 253, 231, 37), "high value is the ramp's bright end");
    stbi_image_free(px);
    remove(path);
}

Test(plot, unwritable_path_is_an_error_not_a_crash) {
    char err[256];
    float y[2] = {1, 2};
    gl_series s[1] = {{"a", NULL, y, 2, false, NULL}};
    gl_chart c = {.title = "t"};
    cr_assert(!gl_plot_lines("/nonexistent/dir/x.png", &c, s, 1, err, sizeof err));
    cr_assert(strstr(err, "cannot create"), "%s", err);
}

/* the grey grid lines crossing a column of the plot area: one per tick */
static int grid_lines_at_column(const unsigned char *px, int w, int x, int y0, int y1) {
    int lines = 0;
    for (int y = y0; y < y1; y++)
        if (near(px + (y * w + x) * 3, 225, 225, 225) && !near(px + ((y - 1) * w + x) * 3, 225, 225, 225)) lines++;
    return lines;
}

/* A scatter series is dots only: two far-apart points are not joined (lab 01's decision boundary and lab 07's reward
 * scatter were drawn as zigzag lines when the word labels came in). */
Test(plot, scatter_points_are_not_joined_by_lines) {
    char path[64], err[128];
    snprintf(path, sizeof path, "/tmp/gradlab_scatter_%d.png", (int)getpid());
    float x[2] = {0, 1}, y[2] = {0, 1};
    for (int points = 1; points >= 0; points--) {
        gl_series s[1] = {{"two points", x, y, 2, points, NULL}};
        gl_chart c = {.title = "t", .width = 400, .height = 300};
        cr_assert(gl_plot_lines(path, &c, s, 1, err, sizeof err), "%s", err);
        int w, h;
        unsigned char *px = load(path, &w, &h);
        int coloured = 0; /* the series colour near the middle of the segment between the points */
        for (int dy = -4; dy <= 4; dy++)
            for (int dx = -4; dx <= 4; dx++) coloured += near(px + ((145 + dy) * w + 235 + dx) * 3, 31, 119, 180);
        if (points) cr_assert_eq(coloured, 0, "a scatter draws no line between its points");
        else cr_assert_gt(coloured, 0, "a line series does join them (the check can fail)");
        stbi_image_free(px);
    }
    remove(path);
}

/* A log axis over less than a decade still gets several ticks (2x and 5x of a power, or every 1x..9x), not one. */
Test(plot, a_short_log_axis_gets_several_ticks) {
    char path[64], err[128];
    snprintf(path, sizeof path, "/tmp/gradlab_logaxis_%d.png", (int)getpid());
    float x[3] = {0, 1, 2}, y[3] = {2.5f, 3.0f, 4.0f}; /* log10 0.40 .. 0.60: no power of ten inside */
    gl_series s[1] = {{"y", x, y, 3, false, NULL}};
    gl_chart c = {.title = "t", .log_y = true, .width = 400, .height = 300};
    cr_assert(gl_plot_lines(path, &c, s, 1, err, sizeof err), "%s", err);
    int w, h;
    unsigned char *px = load(path, &w, &h);
    int lines = grid_lines_at_column(px, w, 105, 51, 239); /* 3 and 4 (y pads to 2.4 .. 4.2) */
    cr_assert_geq(lines, 2, "%d horizontal grid lines on a 2.5..4 log axis", lines);
    stbi_image_free(px);
    remove(path);
}

/* Grouped bars: each series' bar in its palette colour, as tall as its value on an axis from 0; a series with the
 * wrong number of values is refused. */
Test(plot, bars_are_as_tall_as_their_values) {
    char path[64], err[128];
    snprintf(path, sizeof path, "/tmp/gradlab_bars_%d.png", (int)getpid());
    float a[2] = {1.0f, 0.5f}, b[2] = {0.25f, 1.0f};
    gl_series s[2] = {{"a", NULL, a, 2, false, NULL}, {"b", NULL, b, 2, false, NULL}};
    const char *groups[2] = {"g1", "g2"};
    gl_chart c = {.title = "t", .ylabel = "y", .width = 400, .height = 300};
    cr_assert(gl_plot_bars(path, &c, groups, 2, s, 2, err, sizeof err), "%s", err);
    int w, h;
    unsigned char *px = load(path, &w, &h);
    /* plot area: x [100, 370), y [74, 240) (one legend row); ymax 1.1: value v reaches 240 - v / 1.1 * 166 */
    int bar_top[2] = {0, 0}; /* the highest pixel of the first group's two bars, scanning their middle columns */
    int mid[2] = {100 + 13 + 27, 100 + 13 + 27 + 54};
    for (int k = 0; k < 2; k++) {
        const unsigned char *rgb = k ? (const unsigned char[3]){255, 127, 14} : (const unsigned char[3]){31, 119, 180};
        for (int y = 74; y < 240 && !bar_top[k]; y++)
            if (near(px + (y * w + mid[k]) * 3, rgb[0], rgb[1], rgb[2])) bar_top[k] = y;
    }
    cr_assert(abs(bar_top[0] - (240 - (int)(1.0 / 1.1 * 166))) <= 2, "bar a/g1 top at %d", bar_top[0]);
    cr_assert(abs(bar_top[1] - (240 - (int)(0.25 / 1.1 * 166))) <= 2, "bar b/g1 top at %d", bar_top[1]);
    stbi_image_free(px);
    gl_series bad[1] = {{"short", NULL, a, 1, false, NULL}};
    cr_assert(!gl_plot_bars(path, &c, groups, 2, bad, 1, err, sizeof err));
    cr_assert(strstr(err, "1 values for 2 groups"), "%s", err);
    remove(path);
}

Test(plot, panels_sit_in_their_grid_cells_under_the_title) {
    char path[64], err[128];
    snprintf(path, sizeof path, "/tmp/gradlab_panels_%d.png", (int)getpid());
    float x[3] = {0, 1, 2}, y[3] = {0, 1, 2};
    gl_series s[1] = {{"diagonal", x, y, 3, false, NULL}};
    gl_panel p[3] = {{{.title = "a", .width = 400, .height = 300}, s, 1},
                     {{.title = "b", .width = 400, .height = 300}, s, 1},
                     {{.title = "c", .width = 400, .height = 300}, s, 1}};
    cr_assert(gl_plot_panels(path, "dashboard", p, 3, 2, err, sizeof err), "%s", err);
    int w, h;
    unsigned char *px = load(path, &w, &h);
    cr_assert(w == 800 && h == 50 + 600, "%d x %d", w, h);
    /* each chart's y axis (x = 100 in its cell) is black; the empty fourth cell is white there */
    cr_assert(near(px + ((50 + 150) * w + 100) * 3, 0, 0, 0));
    cr_assert(near(px + ((50 + 150) * w + 400 + 100) * 3, 0, 0, 0));
    cr_assert(near(px + ((50 + 300 + 150) * w + 100) * 3, 0, 0, 0));
    cr_assert(near(px + ((50 + 300 + 150) * w + 400 + 100) * 3, 255, 255, 255));
    stbi_image_free(px);
    remove(path);
}
