/* `nnrpc describe`: services, methods, messages and enums printed as
 * .proto text, each followed by the types it uses, transitively. */
#ifndef NNRPC_CLI_DESCRIBE_H
#define NNRPC_CLI_DESCRIBE_H

#include <stdio.h>

#include "pool.h"

/* "unary", "server streaming", "client streaming", "bidi streaming" */
const char *method_kind_name(const MethodProto *m);

/* A service (only = NULL) or one of its methods, then the types used. */
void describe_service(FILE *out, const cli_pool *p, const pool_entry *svc, const MethodProto *only);
/* A message or an enum, then the types it uses. */
void describe_type(FILE *out, const cli_pool *p, const pool_entry *e);

#endif
