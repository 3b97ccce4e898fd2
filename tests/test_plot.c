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
