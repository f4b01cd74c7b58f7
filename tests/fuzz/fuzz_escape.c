/*
 * fuzz_escape.c - every escaper for untrusted text, on the same raw string:
 *   csv_cell     output, unquoted, gives back the input; it never starts
 *                with = + - @ TAB CR, nor does its quoted content, without
 *                the ' prefix; it is quoted whenever it holds " , CR or LF;
 *   term_safe    no byte < 0x20 or 0x7f, valid UTF-8, no C1 control or
 *                bidi control, never longer than the input;
 *   xml_escape   no raw < > " ', every & starts a reference, no control
 *                byte, valid UTF-8 without C1, U+FFFE/U+FFFF or bidi overrides;
 *   md_escape    no raw < > or control byte, every & starts a reference, every
 *                GFM special character is backslash-escaped.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reports/report.h"
#include "tests/fuzz/fuzz_common.h"

/* Decodes the valid UTF-8 sequence at s (of at most n bytes); 0 when invalid. */
static size_t decode(const unsigned char *s, size_t n, unsigned long *cp)
{
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	for (size_t k = 2; k <= 4 && k <= n; k++)
		if (fuzz_utf8_valid(s, k)) {
			unsigned long v = s[0] & (k == 2 ? 0x1fu : k == 3 ? 0x0fu : 0x07u);
			for (size_t i = 1; i < k; i++)
				v = (v << 6) | (s[i] & 0x3fu);
			*cp = v;
			return k;
		}
	return 0;
}

static bool is_bidi(unsigned long cp)
{
	return (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

static bool csv_trigger(char c)
{
	return c != '\0' && strchr("=+-@\t\r", c) != NULL;
}

static void check_csv(const char *in)
{
	struct kv_buf b;
	const char *o;
	size_t len, inlen = strlen(in);
	bool quoted;
	struct kv_buf dec;

	kv_buf_init(&b, 0);
	csv_cell(&b, in);
	o = b.len > 0 ? b.data : "";
	len = b.len;
	if (inlen == 0) {
		if (len != 0)
			fuzz_fail("csv_cell: output for an empty cell");
		kv_buf_release(&b);
		return;
	}
	if (csv_trigger(o[0]))
		fuzz_fail("csv_cell: output starts with formula trigger 0x%02x", (unsigned char)o[0]);
	quoted = o[0] == '"';
	if (quoted && (len < 2 || o[len - 1] != '"'))
		fuzz_fail("csv_cell: opening quote without a closing one");
	if (quoted && csv_trigger(o[1]))
		fuzz_fail("csv_cell: quoted cell starts with formula trigger 0x%02x", (unsigned char)o[1]);
	if (!quoted && strpbrk(o, "\",\r\n") != NULL)
		fuzz_fail("csv_cell: unquoted cell holds a quote, comma, CR or LF");
	/* Unquote and compare with the input (the ' prefix goes when the input starts with a trigger). */
	kv_buf_init(&dec, 0);
	for (size_t i = quoted ? 1 : 0; i < (quoted ? len - 1 : len); i++) {
		if (quoted && o[i] == '"') {
			if (i + 1 >= len - 1 || o[i + 1] != '"')
				fuzz_fail("csv_cell: lone quote inside a quoted cell at %zu", i);
			i++;
		}
		kv_buf_addc(&dec, o[i]);
	}
	{
		const char *d = dec.len > 0 ? dec.data : "";
		size_t dlen = dec.len;

		if (csv_trigger(in[0])) {
			if (dlen == 0 || d[0] != '\'')
				fuzz_fail("csv_cell: input starts with a trigger but the cell has no ' prefix");
			d++;
			dlen--;
		}
		if (dlen != inlen || memcmp(d, in, inlen) != 0)
			fuzz_fail("csv_cell: cell does not decode back to the input");
	}
	kv_buf_release(&dec);
	kv_buf_release(&b);
}

static void check_term(const char *in)
{
	char *out = term_safe(in);
	size_t len = strlen(out);

	if (len > strlen(in))
		fuzz_fail("term_safe: output longer than the input");
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] == 0x7f)
			fuzz_fail("term_safe: control byte 0x%02x at %zu", (unsigned char)out[i], i);
	if (!fuzz_utf8_valid((const unsigned char *)out, len))
		fuzz_fail("term_safe: output is not valid UTF-8");
	for (size_t i = 0; i < len;) {
		unsigned long cp;
		size_t n = decode((const unsigned char *)out + i, len - i, &cp);

		if ((cp >= 0x80 && cp <= 0x9f) || is_bidi(cp) || cp == 0x200e || cp == 0x200f || cp == 0x061c)
			fuzz_fail("term_safe: unsafe code point U+%04lX at %zu", cp, i);
		i += n;
	}
	free(out);
}

/* True when s[i] == '&' starts "&name;" or "&#digits;" or "&#xhex;". */
static bool is_reference(const char *s, size_t i, size_t len)
{
	size_t j = i + 1;

	while (j < len && j - i < 12 && (s[j] == '#' || (s[j] >= '0' && s[j] <= '9') ||
	                                 (s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z')))
		j++;
	return j > i + 1 && j < len && s[j] == ';';
}

static void check_xml(const char *in)
{
	struct kv_buf b;
	const char *o;
	size_t len;

	kv_buf_init(&b, 0);
	xml_escape(&b, in);
	o = b.len > 0 ? b.data : "";
	len = b.len;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)o[i];
		if (c < 0x20 || c == 0x7f || c == '<' || c == '>' || c == '"' || c == '\'')
			fuzz_fail("xml_escape: raw byte 0x%02x at %zu", c, i);
		if (c == '&' && !is_reference(o, i, len))
			fuzz_fail("xml_escape: '&' at %zu does not start a reference", i);
	}
	if (!fuzz_utf8_valid((const unsigned char *)o, len))
		fuzz_fail("xml_escape: output is not valid UTF-8");
	for (size_t i = 0; i < len;) {
		unsigned long cp;
		size_t n = decode((const unsigned char *)o + i, len - i, &cp);

		if ((cp >= 0x80 && cp <= 0x9f) || cp == 0xfffe || cp == 0xffff || is_bidi(cp))
			fuzz_fail("xml_escape: code point U+%04lX at %zu", cp, i);
		i += n;
	}
	kv_buf_release(&b);
}

static void check_md(const char *in)
{
	static const char specials[] = "\\`*_[]()|~#!{}";
	struct kv_buf b;
	const char *o;
	size_t len;

	kv_buf_init(&b, 0);
	md_escape(&b, in);
	o = b.len > 0 ? b.data : "";
	len = b.len;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)o[i];
		if (c < 0x20 || c == 0x7f || c == '<' || c == '>')
			fuzz_fail("md_escape: raw byte 0x%02x at %zu", c, i);
		if (c == '&' && !is_reference(o, i, len))
			fuzz_fail("md_escape: '&' at %zu does not start a reference", i);
		if (c == '\\') {
			if (i + 1 >= len || strchr(specials, o[i + 1]) == NULL || o[i + 1] == '\0')
				fuzz_fail("md_escape: backslash at %zu escapes nothing special", i);
			i++;
			continue;
		}
		if (c != '\0' && strchr(specials, c) != NULL)
			fuzz_fail("md_escape: unescaped '%c' at %zu", c, i);
	}
	for (size_t i = 0; i < len;) {
		unsigned long cp;
		size_t n = decode((const unsigned char *)o + i, len - i, &cp);

		if (n == 0) {
			i++;
			continue;
		}
		if (is_bidi(cp))
			fuzz_fail("md_escape: bidi override U+%04lX at %zu", cp, i);
		i += n;
	}
	kv_buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);

	check_csv(s);
	check_term(s);
	check_xml(s);
	check_md(s);

	free(term_safe(NULL));
	free(s);
	return 0;
}
