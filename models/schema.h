/* JSON Schema for constrained decoding: a schema compiled to grammar text (grammar.h), and a validator for the same
 * subset, so a test can check that what the grammar let through is what the schema asks for.
 *
 * Supported (docs/grammar.md): type (one or a list) object / array / string / number / integer / boolean / null;
 * properties, required, additionalProperties false (properties are generated in the schema's order; a property not
 * in "required" may be left out); items, minItems, maxItems; minLength, maxLength; enum, const; anyOf and oneOf
 * (oneOf generated and validated as anyOf); a schema without type/properties (or true) is any JSON value.
 * Annotations (description, title, default, examples, $schema, $id, $comment) are ignored. Any other keyword
 * (pattern, format, minimum, $ref, allOf, ...) is refused with a message naming it and where it is. */
#ifndef GRADLAB_SCHEMA_H
#define GRADLAB_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>

#include "grammar.h"
#include "json.h"

/* The grammar text (malloc'd; its start rule is root) for documents that follow schema; NULL with a message. */
char *gl_schema_to_grammar(const gl_json *schema, char *err, size_t err_len);
/* the same with the schema's rule named rule instead of root (to use it inside a larger grammar; no root rule) */
char *gl_schema_to_grammar_rule(const gl_json *schema, const char *rule, char *err, size_t err_len);
/* gl_schema_to_grammar, then gl_grammar_parse */
gl_grammar *gl_schema_grammar(const gl_json *schema, char *err, size_t err_len);
/* true if value follows schema; false with the first difference and where (a JSON pointer such as /items/2/city) */
bool gl_schema_validate(const gl_json *schema, const gl_json *value, char *err, size_t err_len);

#endif
