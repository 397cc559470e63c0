/*  transports.c: the table of transports and what they share. */
#include "transport.h"
#include <string.h>

extern const zchan__transport_t zchan__transport_inproc;
extern const zchan__transport_t zchan__transport_ipc;
extern const zchan__transport_t zchan__transport_tcp;

const zchan__transport_t *const zchan__transports[] = {
    &zchan__transport_inproc,
    &zchan__transport_ipc,
    &zchan__transport_tcp,
    NULL,
};
_Static_assert(sizeof zchan__transports / sizeof zchan__transports[0] <= ZCHAN__TRANSPORT_MAX + 1,
               "ZCHAN__TRANSPORT_MAX bounds the table");

const zchan__transport_t *zchan__transport_for(const char *uri)
{
    if (!uri)
        return NULL;
    for (size_t i = 0; zchan__transports[i]; i++) {
        const char *s = zchan__transports[i]->scheme;
        size_t n = strlen(s);
        if (strncmp(uri, s, n) == 0 && strncmp(uri + n, "://", 3) == 0)
            return zchan__transports[i];
    }
    return NULL;
}

size_t zchan__transport_index(const zchan__transport_t *t)
{
    size_t i = 0;
    while (zchan__transports[i] && zchan__transports[i] != t)
        i++;
    zchan__assert(zchan__transports[i]); // t is one of the table's
    return i;
}

const zchan__transport_t *zchan__transport_local(void)
{
    for (size_t i = 0; zchan__transports[i]; i++)
        if (zchan__transports[i]->in_process)
            return zchan__transports[i];
    zchan__assert(!"the table has an in_process transport");
    return NULL;
}

bool zchan__endpoint_in_process(const char *endpoint)
{
    const zchan__transport_t *t = zchan__transport_for(endpoint);
    return t && t->in_process;
}

bool zchan__name_valid(const char *name, size_t len)
{
    if (len == 0 || len > 200)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.'
                  || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    //  "." and ".." would name directories in the ipc runtime directory.
    return !(name[0] == '.' && (len == 1 || (len == 2 && name[1] == '.')));
}
