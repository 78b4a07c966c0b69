/* http_none.c - the HTTP server and client of a library built without
 * llhttp: the server and the client say -ENOTSUP, and no request,
 * response or call ever exists for the other calls to act on. */
#include "coreio.h"

#include <errno.h>

int cio_http_serve_conn(cio_stream *s, const cio_http_server_opts *opts,
			cio_http_handler *h, void *arg)
{
	return -ENOTSUP;
}

int cio_http_serve_turn(int fd, cio_tls_ctx *tls, const cio_http_server_opts *opts,
			cio_http_handler *h, void *arg)
{
	cio_close(fd);
	return -ENOTSUP;
}
void cio_http_turn_free(void *arg, void *state) {}
void cio_http_turn_opts(cio_serve_opts *so, const cio_http_server_opts *opts) {}

const char *cio_http_req_method(const cio_http_req *req) { return ""; }
const char *cio_http_req_target(const cio_http_req *req) { return ""; }
int cio_http_req_version(const cio_http_req *req) { return 0; }
size_t cio_http_req_header_count(const cio_http_req *req) { return 0; }
int cio_http_req_header_at(const cio_http_req *req, size_t i, const char **name,
			   const char **value) { return -ENOENT; }
const char *cio_http_req_header(const cio_http_req *req, const char *name) { return NULL; }
int64_t cio_http_req_content_length(const cio_http_req *req) { return 0; }
int cio_http_req_peer(const cio_http_req *req, cio_addr *out) { return -ENOTSUP; }
ssize_t cio_http_req_read(cio_http_req *req, void *buf, size_t len) { return -ENOTSUP; }
ssize_t cio_http_req_body(cio_http_req *req, size_t limit, const char **body) { return -ENOTSUP; }
int cio_http_resp_status(cio_http_resp *resp, int status) { return -ENOTSUP; }
int cio_http_resp_header(cio_http_resp *resp, const char *name, const char *value) { return -ENOTSUP; }
int cio_http_resp_set_length(cio_http_resp *resp, uint64_t len) { return -ENOTSUP; }
int cio_http_resp_close(cio_http_resp *resp) { return -ENOTSUP; }
ssize_t cio_http_resp_write(cio_http_resp *resp, const void *data, size_t len) { return -ENOTSUP; }
ssize_t cio_http_resp_sendfile(cio_http_resp *resp, int file, int64_t off, size_t len) { return -ENOTSUP; }
int cio_http_resp_flush(cio_http_resp *resp) { return -ENOTSUP; }
int cio_http_resp_end(cio_http_resp *resp) { return -ENOTSUP; }
int cio_http_resp_send(cio_http_resp *resp, int status, const char *content_type,
		       const void *body, size_t len) { return -ENOTSUP; }

int cio_http_client_new(cio_http_client **out, const char *origin,
			const cio_http_client_opts *opts)
{
	*out = NULL;
	return -ENOTSUP;
}
int cio_http_client_free(cio_http_client *cl) { return 0; }
void cio_http_client_stats_get(const cio_http_client *cl, cio_http_client_stats *st)
{
	*st = (cio_http_client_stats){0};
}
int cio_http_call_new(cio_http_client *cl, const char *method, const char *target,
		      cio_http_call **out)
{
	*out = NULL;
	return -ENOTSUP;
}
int cio_http_call_add_header(cio_http_call *call, const char *name, const char *value) { return -ENOTSUP; }
int cio_http_call_set_length(cio_http_call *call, uint64_t len) { return -ENOTSUP; }
ssize_t cio_http_call_write(cio_http_call *call, const void *data, size_t len) { return -ENOTSUP; }
int cio_http_call_send(cio_http_call *call) { return -ENOTSUP; }
int cio_http_call_status(const cio_http_call *call) { return 0; }
int cio_http_call_version(const cio_http_call *call) { return 0; }
size_t cio_http_call_header_count(const cio_http_call *call) { return 0; }
int cio_http_call_header_at(const cio_http_call *call, size_t i, const char **name,
			    const char **value) { return -ENOENT; }
const char *cio_http_call_header(const cio_http_call *call, const char *name) { return NULL; }
int64_t cio_http_call_content_length(const cio_http_call *call) { return 0; }
ssize_t cio_http_call_read(cio_http_call *call, void *buf, size_t len) { return -ENOTSUP; }
ssize_t cio_http_call_body(cio_http_call *call, size_t limit, const char **body) { return -ENOTSUP; }
const char *cio_http_call_error(const cio_http_call *call) { return ""; }
void cio_http_call_free(cio_http_call *call) {}
