/* Lab 02 - a multilayer perceptron on MNIST with the autograd core.
 *   0. before autograd: one hidden layer written by hand (by_hand.c), trained with plain SGD for a few epochs
 *   1. 784-256-128-10 ReLU MLP trained with SGD, SGD + momentum and Adam (same data, same steps), with random
 *      shifts of a pixel or two as data augmentation; test accuracy per epoch for each
 *   2. the confusion matrix and the misclassified digits of the best model
 *   3. the same MLP on Fashion-MNIST
 * Reads the IDX files (gzip or not) from --mnist DIR and --fashion DIR (default: mnist/ and fashion-mnist/ under
 * $GRADLAB_DATA, ../shared/data or data/, see core/io.h gl_find_data). Writes PNGs and results.json into out/lab02.
 * `make lab02`. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "by_hand.h"
#include "cli.h"
#include "gradlab.h"
#include "idx.h"
#include "io.h"
#include "json.h"
#include "plot.h"

/* 1 once an output (a plot, results.json) could not be written: reported at once, exit status 1 at the end */
static int status;

typedef struct {
    gl_idx images, labels;
} split;

/* what the MLP assumes of a split, checked once for every source of images (training used to write past its
 * buffers on 32 x 32 images; an empty test set printed "-nan%") */
static bool check_split(const split *s, const char *what, char *err, size_t n) {
    if (s->images.rows != 28 || s->images.cols != 28)
        return snprintf(err, n, "%s: expected 28 x 28 images, got %d x %d", what, s->images.rows, s->images.cols), false;
    if (s->images.count != s->labels.count)
        return snprintf(err, n, "%s: %d images but %d labels", what, s->images.count, s->labels.count), false;
    if (s->images.count < 1) return snprintf(err, n, "%s: holds no images", what), false;
    for (int i = 0; i < s->labels.count; i++)
        if (s->labels.data[i] > 9)
            return snprintf(err, n, "%s: label %d of image %d is not a digit class 0-9", what, s->labels.data[i], i), false;
    return true;
}

static bool load_split(const char *dir, const char *prefix, split *s, char *err, size_t n) {
    char path[4096];
    const char *names[2] = {"images-idx3-ubyte", "labels-idx1-ubyte"};
    gl_idx *dst[2] = {&s->images, &s->labels};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s-%s", dir, prefix, names[k]);
        if (access(path, R_OK) != 0) strncat(path, ".gz", sizeof path - strlen(path) - 1);
        if (!gl_idx_read(path, k == 0, dst[k], err, n)) return false;
    }
    snprintf(path, sizeof path, "%s/%s-*", dir, prefix);
    return check_split(s, path, err, n);
}

typedef struct {
    gl_tensor *w1, *b1, *w2, *b2, *w3, *b3;
    gl_tensor *p[6];
} mlp;

static void mlp_init(mlp *m, uint64_t seed) {
    gl_rng r;
    gl_rng_seed(&r, seed);
    const int sizes[4] = {784, 256, 128, 10};
    gl_tensor **w[3] = {&m->w1, &m->w2, &m->w3}, **b[3] = {&m->b1, &m->b2, &m->b3};
    for (int l = 0; l < 3; l++) {
        *w[l] = gl_param(GL_DIMS(sizes[l], sizes[l + 1]), "w");
        *b[l] = gl_param(GL_DIMS(sizes[l + 1]), "b");
        (*b[l])->no_weight_decay = true;
        float bound = 1.0f / sqrtf((float)sizes[l]); /* PyTorch's nn.Linear default: U(-1/sqrt(in), 1/sqrt(in)) */
        gl_init_uniform(*w[l], &r, -bound, bound);
        gl_init_uniform(*b[l], &r, -bound, bound);
        m->p[2 * l] = *w[l], m->p[2 * l + 1] = *b[l];
    }
}

static void mlp_free(mlp *m) {
    for (int i = 0; i < 6; i++) gl_param_free(m->p[i]);
}

static gl_tensor *mlp_forward(mlp *m, gl_tensor *x) {
    x = gl_relu(gl_linear(x, m->w1, m->b1));
    x = gl_relu(gl_linear(x, m->w2, m->b2));
    return gl_linear(x, m->w3, m->b3);
}

/* the model file: "GLMLP\0\0\0", the 6 parameter tensors' floats in order, an FNV-1a 64 checksum; written to a
 * temp name and renamed */
static bool mlp_save(const mlp *m, const char *path) {
    gl_atomic file;
    FILE *f = gl_atomic_open(&file, path);
    if (!f) return false;
    uint64_t h = GL_FNV_OFFSET;
    bool ok = fwrite("GLMLP\0\0\0", 1, 8, f) == 8;
    for (int i = 0; i < 6 && ok; i++) {
        size_t n = (size_t)m->p[i]->numel * sizeof(float);
        h = gl_fnv1a(h, m->p[i]->data, n);
        ok = fwrite(m->p[i]->data, 1, n, f) == n;
    }
    ok = ok && fwrite(&h, 8, 1, f) == 1;
    if (ok && gl_atomic_commit(&file)) return true;
    gl_atomic_abort(&file); /* a failed write never replaces the previous model */
    return false;
}

static bool mlp_load(mlp *m, const char *path, char *err, size_t n) {
    mlp_init(m, 0);
    unsigned char *buf; /* regular files only: a FIFO or a folder is refused (gl_read_whole_file) */
    size_t len, need = 8 + 8;
    if (!gl_read_whole_file(path, &buf, &len, err, n)) return false;
    for (int i = 0; i < 6; i++) need += (size_t)m->p[i]->numel * sizeof(float);
    uint64_t stored = 0;
    bool ok = len == need && memcmp(buf, "GLMLP\0\0\0", 8) == 0;
    if (ok) memcpy(&stored, buf + len - 8, 8), ok = stored == gl_fnv1a(GL_FNV_OFFSET, buf + 8, len - 16);
    for (size_t at = 8, i = 0; ok && i < 6; at += (size_t)m->p[i]->numel * sizeof(float), i++)
        memcpy(m->p[i]->data, buf + at, (size_t)m->p[i]->numel * sizeof(float));
    free(buf);
    if (!ok) snprintf(err, n, "'%s' is not a lab 02 model, or is truncated or corrupt", path);
    return ok;
}

/* image i, shifted by (dx, dy) pixels (zeros shifted in), scaled to [0, 1] */
static void pixels(const gl_idx *im, int i, int dx, int dy, float *out) {
    int h = im->rows, w = im->cols;
    const uint8_t *src = im->data + (size_t)i * h * w;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int sy = y - dy, sx = x - dx;
            out[y * w + x] = sy >= 0 && sy < h && sx >= 0 && sx < w ? src[sy * w + sx] / 255.0f : 0.0f;
        }
}

/* accuracy on a split; fills predictions if pred != NULL */
/* the index of the largest of n values (the first on ties): a row of logits to its predicted class */
static int argmax(const float *v, int n) {
    int best = 0;
    for (int c = 1; c < n; c++) best = v[c] > v[best] ? c : best;
    return best;
}

static double evaluate(mlp *m, const split *s, int *pred) {
    enum { B = 500 };
    float *x = malloc((size_t)B * 784 * sizeof *x);
    int ok = 0;
    for (int i0 = 0; i0 < s->images.count; i0 += B) {
        int n = s->images.count - i0 < B ? s->images.count - i0 : B;
        for (int i = 0; i < n; i++) pixels(&s->images, i0 + i, 0, 0, x + (size_t)i * 784);
        gl_step_reset();
        gl_no_grad_begin();
        gl_tensor *logits = mlp_forward(m, gl_from(GL_DIMS(n, 784), x));
        gl_no_grad_end();
        for (int i = 0; i < n; i++) {
            int best = argmax(logits->data + i * 10, 10);
            ok += best == s->labels.data[i0 + i];
            if (pred) pred[i0 + i] = best;
        }
    }
    free(x);
    return (double)ok / s->images.count;
}

/* 0. the 784-64-10 MLP of by_hand.c trained by plain SGD on the hand-written gradients; its test accuracy comes
 * from autograd's forward pass on the same weights, so a wrong hand-written forward shows up as a gap between
 * the two losses */
static void train_by_hand(const split *tr, const split *te) {
    enum { IN = 784, HID = 64, OUT = 10, B = 64, EPOCHS = 3 };
    const float lr = 0.1f;
    mlp_hand m = {IN, HID, OUT, malloc(IN * HID * sizeof(float)), malloc(HID * sizeof(float)),
                  malloc(HID * OUT * sizeof(float)), malloc(OUT * sizeof(float))};
    mlp_hand g = {IN, HID, OUT, malloc(IN * HID * sizeof(float)), malloc(HID * sizeof(float)),
                  malloc(HID * OUT * sizeof(float)), malloc(OUT * sizeof(float))};
    float *params[4] = {m.w1, m.b1, m.w2, m.b2}, *grads[4] = {g.w1, g.b1, g.w2, g.b2};
    const int sizes[4] = {IN * HID, HID, HID * OUT, OUT}, fan_in[4] = {IN, IN, HID, HID};
    gl_rng r;
    gl_rng_seed(&r, 5);
    for (int p = 0; p < 4; p++) { /* nn.Linear's default, as mlp_init */
        float bound = 1.0f / sqrtf((float)fan_in[p]);
        for (int i = 0; i < sizes[p]; i++) params[p][i] = (gl_rng_uniform(&r) * 2 - 1) * bound;
    }
    printf("0. Before autograd: a 784-%d-10 MLP whose forward and backward are written by hand (by_hand.c),\n"
           "   plain SGD (lr %.1f, batch %d, no augmentation); test accuracy and loss from autograd's forward on the same weights\n",
           HID, lr, B);
    int n = tr->images.count, nt = te->images.count;
    float *x = malloc((size_t)B * IN * sizeof *x), *x_test = malloc((size_t)nt * IN * sizeof *x_test);
    int32_t y[B], *labels = malloc((size_t)nt * sizeof *labels);
    for (int i = 0; i < nt; i++) pixels(&te->images, i, 0, 0, x_test + (size_t)i * IN), labels[i] = te->labels.data[i];
    for (int e = 0; e < EPOCHS; e++) {
        double loss_sum = 0;
        int batches = 0;
        for (int i0 = 0; i0 + B <= n; i0 += B, batches++) {
            for (int i = 0; i < B; i++) {
                int k = (int)gl_rng_below(&r, (uint64_t)n);
                pixels(&tr->images, k, 0, 0, x + (size_t)i * IN);
                y[i] = tr->labels.data[k];
            }
            loss_sum += mlp_hand_loss_and_grads(&m, x, y, B, &g);
            for (int p = 0; p < 4; p++)
                for (int i = 0; i < sizes[p]; i++) params[p][i] -= lr * grads[p][i];
        }
        /* the whole test split through autograd's ops with the hand-trained weights */
        int right = 0;
        gl_step_reset();
        gl_no_grad_begin();
        gl_tensor *logits = gl_linear(gl_relu(gl_linear(gl_from(GL_DIMS(nt, IN), x_test), gl_from(GL_DIMS(IN, HID), m.w1),
                                                        gl_from(GL_DIMS(HID), m.b1))),
                                      gl_from(GL_DIMS(HID, OUT), m.w2), gl_from(GL_DIMS(OUT), m.b2));
        float test_loss = gl_cross_entropy(logits, labels, -1)->data[0];
        gl_no_grad_end();
        for (int i = 0; i < nt; i++) right += argmax(logits->data + i * OUT, OUT) == labels[i];
        printf("  by hand   epoch %2d: train loss %.4f (by hand), test loss %.4f and accuracy %.2f%% (autograd)\n", e + 1,
               loss_sum / batches, test_loss, 100.0 * right / nt);
    }
    printf("  (make check-lab02 compares each hand-written gradient with autograd's)\n\n");
    for (int p = 0; p < 4; p++) free(params[p]), free(grads[p]);
    free(x), free(x_test), free(labels);
}

/* trains m for `epochs` epochs; acc[e] = test accuracy after epoch e. Stops early once the test accuracy
 * reaches target (> 0); returns the epochs run. */
static int train(mlp *m, gl_optim *opt, const split *tr, const split *te, int epochs, bool augment, uint64_t seed,
                 double *acc, const char *label, double target) {
    enum { B = 64 };
    gl_rng r;
    gl_rng_seed(&r, seed);
    int n = tr->images.count;
    int *order = malloc((size_t)n * sizeof *order);
    float *x = malloc((size_t)B * 784 * sizeof *x);
    int32_t y[B];
    for (int i = 0; i < n; i++) order[i] = i;
    float base_lr = opt->lr;
    int64_t total = (int64_t)epochs * (n / B), step = 0;
    for (int e = 0; e < epochs; e++) {
        for (int i = n - 1; i > 0; i--) {
            int j = (int)gl_rng_below(&r, (uint64_t)i + 1), t = order[i];
            order[i] = order[j], order[j] = t;
        }
        double loss_sum = 0;
        int batches = 0;
        for (int i0 = 0; i0 + B <= n; i0 += B, batches++) {
            for (int i = 0; i < B; i++) {
                int dx = augment ? (int)gl_rng_below(&r, 5) - 2 : 0, dy = augment ? (int)gl_rng_below(&r, 5) - 2 : 0;
                pixels(&tr->images, order[i0 + i], dx, dy, x + (size_t)i * 784);
                y[i] = tr->labels.data[order[i0 + i]];
            }
            gl_step_reset();
            opt->lr = gl_lr_warmup_cosine(step++, 1, total, base_lr, base_lr * 0.01f); /* cosine decay */
            gl_tensor *loss = gl_cross_entropy(mlp_forward(m, gl_from(GL_DIMS(B, 784), x)), y, -1);
            gl_backward(loss);
            gl_optim_step(opt);
            gl_optim_zero_grad(opt);
            loss_sum += loss->data[0];
        }
        acc[e] = evaluate(m, te, NULL);
        printf("  %-9s epoch %2d: train loss %.4f, test accuracy %.2f%%\n", label, e + 1, loss_sum / batches, 100 * acc[e]);
        fflush(stdout);
        if (target > 0 && acc[e] >= target) {
            epochs = e + 1;
            break;
        }
    }
    free(order);
    free(x);
    return epochs;
}

int main(int argc, char **argv) {
    /* the 8,000/2,000 subset of the shared data folder, else the full MNIST that `make data` fetches; Fashion-MNIST
     * from the data folders or Debian's dataset-fashion-mnist package */
    char mnist_dir[4096], fashion_dir[4096];
    if (!gl_find_data("mnist", mnist_dir, sizeof mnist_dir)) gl_find_data("mnist-full", mnist_dir, sizeof mnist_dir);
    if (!gl_find_data("fashion-mnist", fashion_dir, sizeof fashion_dir) &&
        access("/usr/share/datasets/fashion-mnist", R_OK) == 0)
        snprintf(fashion_dir, sizeof fashion_dir, "/usr/share/datasets/fashion-mnist");
    const char *out = "out/lab02", *model_path = NULL, *test_images = NULL, *test_labels = NULL;
    double time_to = 0;
    int epochs = 30, fashion_epochs = 10;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mnist") && i + 1 < argc) snprintf(mnist_dir, sizeof mnist_dir, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--fashion") && i + 1 < argc) snprintf(fashion_dir, sizeof fashion_dir, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--epochs") && i + 1 < argc) epochs = gl_flag_int("lab02", "--epochs", argv[++i], 1, 200);
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) model_path = argv[++i];
        else if (!strcmp(argv[i], "--test-images") && i + 1 < argc) test_images = argv[++i];
        else if (!strcmp(argv[i], "--test-labels") && i + 1 < argc) test_labels = argv[++i];
        else if (!strcmp(argv[i], "--time-to") && i + 1 < argc) time_to = gl_flag_number("lab02", "--time-to", argv[++i], 0, 1);
        else {
            fprintf(stderr, "usage: lab02 [--mnist DIR] [--fashion DIR] [--epochs 30] [--out DIR]\n"
                            "       lab02 --test-images F --test-labels F [--model out/lab02/mnist_mlp.bin]\n");
            return 2;
        }
    }
    char err[8192], path[4096];
    if (test_images || test_labels) { /* evaluate a saved model on any IDX test set */
        if (!test_images || !test_labels) {
            fprintf(stderr, "lab02: --test-images and --test-labels go together\n");
            return 2;
        }
        char default_model[4096];
        snprintf(default_model, sizeof default_model, "%s/mnist_mlp.bin", out);
        mlp m;
        split s;
        if (!mlp_load(&m, model_path ? model_path : default_model, err, sizeof err) ||
            !gl_idx_read(test_images, true, &s.images, err, sizeof err) ||
            !gl_idx_read(test_labels, false, &s.labels, err, sizeof err)) {
            fprintf(stderr, "lab02: %s\n", err);
            return 1;
        }
        if (!check_split(&s, test_images, err, sizeof err)) {
            fprintf(stderr, "lab02: %s\n", err);
            return 1;
        }
        printf("accuracy of %s on %s: %.2f%% (%d images)\n", model_path ? model_path : default_model, test_images,
               100 * evaluate(&m, &s, NULL), s.images.count);
        return 0;
    }
    split tr, te;
    /* the test split is test-* in the subset and t10k-* in the official files */
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/test-images-idx3-ubyte", mnist_dir);
    bool subset_names = access(probe, R_OK) == 0 || (strncat(probe, ".gz", 4), access(probe, R_OK) == 0);
    if (!load_split(mnist_dir, "train", &tr, err, sizeof err) ||
        !load_split(mnist_dir, subset_names ? "test" : "t10k", &te, err, sizeof err)) {
        fprintf(stderr, "lab02: %s\n  (`make data` fetches the official MNIST into data/mnist-full; or point --mnist at a folder of IDX files)\n", err);
        return 1;
    }
    if (time_to > 0) { /* for make bench-mnist: seconds of Adam training until the test accuracy reaches time_to */
        mlp m;
        mlp_init(&m, 1);
        gl_optim *opt = gl_adam(m.p, 6, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f);
        double a[200];
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int used = train(&m, opt, &tr, &te, epochs, true, 7, a, "Adam", time_to);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
        printf("RESULT seconds %.3f epochs %d accuracy %.4f reached %d\n", secs, used, a[used - 1], a[used - 1] >= time_to);
        return 0;
    }
    mkdir("out", 0755);
    mkdir(out, 0755);
    printf("Lab 02: an MLP (784-256-128-10, ReLU) on MNIST: %d training and %d test images from %s\n", tr.images.count,
           te.images.count, mnist_dir);
    printf("batch 64, %d epochs, cosine learning-rate decay, random shifts of up to 2 pixels as augmentation\n\n", epochs);
    train_by_hand(&tr, &te);

    /* 1. three optimizers */
    const char *names[3] = {"SGD", "momentum", "Adam"};
    double acc[3][200];
    mlp models[3];
    double secs[3];
    for (int k = 0; k < 3; k++) {
        mlp_init(&models[k], 1);
        gl_optim *opt = k == 0 ? gl_sgd(models[k].p, 6, 0.05f, 0.0f, 0.0f)
                      : k == 1 ? gl_sgd(models[k].p, 6, 0.05f, 0.9f, 0.0f)
                               : gl_adam(models[k].p, 6, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        train(&models[k], opt, &tr, &te, epochs, true, 7, acc[k], names[k], 0);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        secs[k] = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
        printf("  %s: final test accuracy %.2f%% in %.1f s\n\n", names[k], 100 * acc[k][epochs - 1], secs[k]);
        gl_optim_free(opt);
    }
    float ex[200], ay[3][200];
    for (int e = 0; e < epochs; e++) {
        ex[e] = (float)(e + 1);
        for (int k = 0; k < 3; k++) ay[k][e] = (float)(100 * acc[k][e]);
    }
    gl_series curves[3] = {{"SGD", ex, ay[0], epochs, false, NULL}, {"SGD + momentum", ex, ay[1], epochs, false, NULL},
                           {"Adam", ex, ay[2], epochs, false, NULL}};
    gl_chart ch = {.title = "MNIST test accuracy by optimizer", .xlabel = "epoch", .ylabel = "test accuracy (%)",
                   .legend_bottom = true};
    snprintf(path, sizeof path, "%s/optimizers.png", out);
    if (!gl_plot_lines(path, &ch, curves, 3, err, (int)sizeof err)) fprintf(stderr, "lab02: %s\n", err), status = 1;

    /* 2. confusion matrix and mistakes of the best model */
    int best = 0;
    for (int k = 1; k < 3; k++) best = acc[k][epochs - 1] > acc[best][epochs - 1] ? k : best;
    snprintf(path, sizeof path, "%s/mnist_mlp.bin", out);
    if (!mlp_save(&models[best], path)) fprintf(stderr, "lab02: could not write %s\n", path);
    else printf("saved the %s model to %s (evaluate it on any IDX set with --test-images F --test-labels F)\n\n",
                names[best], path);
    int *pred = malloc((size_t)te.images.count * sizeof *pred);
    evaluate(&models[best], &te, pred);
    float conf[100] = {0}, row_total[10] = {0};
    for (int i = 0; i < te.images.count; i++) conf[te.labels.data[i] * 10 + pred[i]]++, row_total[te.labels.data[i]]++;
    printf("2. Confusion matrix of the %s model (rows: true digit, columns: predicted)\n     ", names[best]);
    for (int c = 0; c < 10; c++) printf("%5d", c);
    printf("\n");
    for (int r = 0; r < 10; r++) {
        printf("  %d: ", r);
        for (int c = 0; c < 10; c++) printf("%5.0f", (double)conf[r * 10 + c]);
        printf("\n");
    }
    float confn[100];
    for (int i = 0; i < 100; i++) confn[i] = conf[i] / (row_total[i / 10] > 0 ? row_total[i / 10] : 1);
    const char *digits[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
    gl_heatmap hm[1] = {{"share of each true digit (row) predicted as each digit (column)", confn, 10, 10}};
    snprintf(path, sizeof path, "%s/confusion.png", out);
    if (!gl_plot_heatmaps(path, "MNIST confusion matrix", hm, 1, 1, digits, digits, 0, 1, err, (int)sizeof err))
        fprintf(stderr, "lab02: %s\n", err), status = 1;
    unsigned char *wrong = malloc((size_t)48 * 784);
    char caps[48][24];
    const char *cap_ptr[48];
    int nw = 0;
    for (int i = 0; i < te.images.count && nw < 48; i++)
        if (pred[i] != te.labels.data[i]) {
            memcpy(wrong + (size_t)nw * 784, te.images.data + (size_t)i * 784, 784);
            snprintf(caps[nw], sizeof caps[nw], "%d as %d", te.labels.data[i], pred[i]);
            cap_ptr[nw] = caps[nw];
            nw++;
        }
    snprintf(path, sizeof path, "%s/misclassified.png", out);
    if (nw && !gl_plot_image_grid(path, "Misclassified test digits (true as predicted)", wrong, nw, 28, 28, 12, 3,
                                  cap_ptr, err, (int)sizeof err))
        fprintf(stderr, "lab02: %s\n", err), status = 1;
    printf("  %d of %d test digits wrong; the first %d are drawn in %s\n\n", (int)(te.images.count * (1 - acc[best][epochs - 1]) + 0.5),
           te.images.count, nw, path);

    /* 3. Fashion-MNIST */
    split ftr = {0}, fte = {0};
    double facc[200] = {0};
    bool have_fashion = load_split(fashion_dir, "train", &ftr, err, sizeof err) &&
                        load_split(fashion_dir, "t10k", &fte, err, sizeof err);
    if (have_fashion) {
        printf("3. The same MLP on Fashion-MNIST (%d training, %d test images), Adam, no augmentation\n", ftr.images.count,
               fte.images.count);
        mlp fm;
        mlp_init(&fm, 2);
        gl_optim *opt = gl_adam(fm.p, 6, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f);
        train(&fm, opt, &ftr, &fte, fashion_epochs, false, 9, facc, "Fashion", 0);
        printf("  Fashion-MNIST test accuracy %.2f%%\n\n", 100 * facc[fashion_epochs - 1]);
        gl_optim_free(opt);
        mlp_free(&fm);
    } else {
        printf("3. Fashion-MNIST skipped: %s\n\n", err);
    }

    snprintf(path, sizeof path, "%s/results.json", out);
    gl_json_writer js;
    if (gl_jw_open(&js, path)) {
        gl_jw_object(&js, NULL);
        gl_jw_int(&js, "mnist_train", tr.images.count);
        gl_jw_int(&js, "mnist_test", te.images.count);
        gl_jw_int(&js, "epochs", epochs);
        for (int k = 0; k < 3; k++) {
            char key[64];
            snprintf(key, sizeof key, "%s_test_accuracy", names[k]);
            gl_jw_number(&js, key, acc[k][epochs - 1]);
            snprintf(key, sizeof key, "%s_seconds", names[k]);
            gl_jw_number(&js, key, secs[k]);
        }
        gl_jw_number(&js, "fashion_test_accuracy", have_fashion ? facc[fashion_epochs - 1] : NAN); /* null if absent */
        gl_jw_end(&js);
    }
    if (!gl_jw_close(&js)) fprintf(stderr, "lab02: could not write %s\n", path), status = 1;
    printf("wrote %s/optimizers.png, confusion.png, misclassified.png, results.json\n", out);
    for (int k = 0; k < 3; k++) mlp_free(&models[k]);
    split *splits[4] = {&tr, &te, &ftr, &fte};
    for (int i = 0; i < 4; i++) gl_idx_free(&splits[i]->images), gl_idx_free(&splits[i]->labels);
    free(pred), free(wrong);
    gl_stdout_check("lab02");
    return status;
}
