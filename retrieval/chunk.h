/* Markdown pages into retrievable chunks, each knowing its page and its heading path (for citations).
 *
 * Cleaning (MkDocs as the FastAPI docs use it): include markers {!...!} (code samples kept outside the docs) and
 * code fence lines are dropped, the code inside fences is kept as text; admonitions (`/// tip`, `/// note | Title`)
 * become their title on a line of its own and their closing `///` goes; tab blocks (`//// tab | Python 3.9+`) and
 * their closings go; HTML tags are removed and their text kept (`<abbr title="...">ASGI</abbr>` -> ASGI); headings
 * (`#` to `######`, outside fences) open sections.
 *
 * Strategies, all capped at `words` words per chunk:
 *   heading   each section (the text under one heading) alone; a long one in windows of `words` words that
 *             overlap by `overlap` words (recursive in the sense of LangChain's splitter: headings first, then words)
 *   window    the whole page in windows of `words` words overlapping by `overlap`, across headings
 *   sentence  sections split into sentences (. ! ? then a space or line end, or a blank line), packed whole into
 *             chunks of at most `words` words (a longer sentence is a chunk of its own, cut at the cap)
 * A chunk's text starts with its heading path ("CORS > Use CORSMiddleware") on a line of its own: the words of a
 * heading belong to every chunk under it. start and end are the byte range, in the page, of the section (heading,
 * sentence) or of the words (window) the chunk came from. */
#ifndef GRADLAB_CHUNK_H
#define GRADLAB_CHUNK_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { CHUNK_HEADING, CHUNK_WINDOW, CHUNK_SENTENCE } chunk_strategy;

typedef struct {
    chunk_strategy strategy;
    int words;   /* cap per chunk (default 200) */
    int overlap; /* words shared by consecutive windows (default 40; < words) */
} chunk_config;

typedef struct {
    char *heading; /* "Title > Section > Subsection" (the page's path when it has no heading) */
    char *text;    /* the heading path, a newline, then the cleaned words of the chunk */
    size_t start, end;
    int words;
} chunk;

typedef struct {
    chunk *items;
    int n, cap;
} chunk_list;

/* "heading", "window", "sentence" -> strategy; false if none */
bool chunk_strategy_parse(const char *name, chunk_strategy *s);
const char *chunk_strategy_name(chunk_strategy s);

/* Appends the chunks of one page (len bytes of UTF-8 Markdown; path names it in headings of pages without one).
 * Returns the number added (0 for a page with no words). */
int chunk_page(const char *path, const char *md, size_t len, chunk_config c, chunk_list *out);
void chunk_list_free(chunk_list *l);

#endif
