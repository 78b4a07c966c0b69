/* fuzz_addr.c - libFuzzer target for cio_addr_parse() and
 * cio_addr_format(): text that parses must format back to text that
 * parses to the same address, and formatting any address the kernel could
 * hand back (getsockname, accept) fits the buffer or says -ENOSPC.
 *
 * The first byte picks the mode and the output buffer's size; the rest is
 * the text (mode 0) or the raw address (mode 1). */
#include <coreio.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAIL(...) (fprintf(stderr, "fuzz_addr: " __VA_ARGS__), fputc('\n', stderr), abort())

/* Formats a into a buffer of exactly cap bytes (on the heap, so that
 * ASan sees one byte too far) and checks what came back. */
static int format_checked(const cio_addr *a, size_t cap, char *copy, size_t copy_cap)
{
	char *buf = malloc(cap ? cap : 1);
	int n = cio_addr_format(a, buf, cap);
	if (n >= 0) {
		if ((size_t)n >= cap || strlen(buf) != (size_t)n)
			FAIL("format returned %d for a buffer of %zu", n, cap);
		if (copy && (size_t)n < copy_cap)
			memcpy(copy, buf, (size_t)n + 1);
	} else if (n != -ENOSPC && n != -EAFNOSUPPORT) {
		FAIL("format returned %d", n);
	}
	free(buf);
	return n;
}

static void same(const cio_addr *a, const cio_addr *b, const char *text)
{
	if (a->len != b->len || a->u.sa.sa_family != b->u.sa.sa_family)
		FAIL("round trip of \"%s\": len %u/%u", text, (unsigned)a->len, (unsigned)b->len);
	switch (a->u.sa.sa_family) {
	case AF_INET:
		if (a->u.in.sin_port != b->u.in.sin_port ||
		    a->u.in.sin_addr.s_addr != b->u.in.sin_addr.s_addr)
			FAIL("round trip of \"%s\" changed the address", text);
		break;
	case AF_INET6:
		if (a->u.in6.sin6_port != b->u.in6.sin6_port ||
		    memcmp(&a->u.in6.sin6_addr, &b->u.in6.sin6_addr, 16) != 0)
			FAIL("round trip of \"%s\" changed the address", text);
		break;
	case AF_UNIX:
		if (memcmp(a->u.un.sun_path, b->u.un.sun_path,
			   a->len - offsetof(struct sockaddr_un, sun_path)) != 0)
			FAIL("round trip of \"%s\" changed the path", text);
		break;
	default:
		FAIL("parse of \"%s\" gave family %d", text, a->u.sa.sa_family);
	}
}

static void text_mode(const uint8_t *data, size_t size, size_t cap)
{
	/* Exactly the text and its NUL, so a read past it is caught. */
	char *text = malloc(size + 1);
	cio_addr a, b;
	char out[256];

	memcpy(text, data, size);
	text[size] = '\0';
	int rc = cio_addr_parse(&a, text);
	if (rc == 0) {
		if (a.len == 0 || a.len > sizeof a.u)
			FAIL("parse of \"%s\" gave len %u", text, (unsigned)a.len);
		format_checked(&a, cap, NULL, 0);
		if (format_checked(&a, sizeof out, out, sizeof out) < 0)
			FAIL("\"%s\" parses but does not format", text);
		if (cio_addr_parse(&b, out) != 0)
			FAIL("\"%s\" formats as \"%s\", which does not parse", text, out);
		same(&a, &b, text);
	} else if (rc != -EINVAL) {
		FAIL("parse of \"%s\" returned %d", text, rc);
	}
	free(text);
}

/* An address as the kernel could report it: any bytes, a length up to
 * the storage's size. */
static void raw_mode(const uint8_t *data, size_t size, size_t cap)
{
	static const sa_family_t families[4] = {AF_INET, AF_INET6, AF_UNIX, AF_UNSPEC};
	cio_addr a, b;
	char out[256];

	if (size < 2)
		return;
	memset(&a, 0, sizeof a);
	sa_family_t fam = families[data[0] & 3];
	size_t len = data[1] % (sizeof a.u + 1);
	data += 2, size -= 2;
	memcpy(&a.u, data, size < sizeof a.u ? size : sizeof a.u);
	a.u.sa.sa_family = fam;
	switch (fam) {
	case AF_INET: len = sizeof a.u.in; break;
	case AF_INET6: len = sizeof a.u.in6; break;
	case AF_UNIX:
		if (len < offsetof(struct sockaddr_un, sun_path))
			len = offsetof(struct sockaddr_un, sun_path);
		break;
	}
	a.len = (socklen_t)len;
	format_checked(&a, cap, NULL, 0);
	if (fam == AF_INET || fam == AF_INET6) {
		if (format_checked(&a, sizeof out, out, sizeof out) < 0)
			FAIL("an IP address does not format");
		if (cio_addr_parse(&b, out) != 0)
			FAIL("\"%s\" (formatted) does not parse", out);
		same(&a, &b, out);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t cap = data[0] >> 1; /* 0..127: short buffers too */
	if (data[0] & 1)
		raw_mode(data + 1, size - 1, cap);
	else
		text_mode(data + 1, size - 1, cap);
	return 0;
}
