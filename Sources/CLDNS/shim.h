#ifndef DNSGATE_CLDNS_SHIM_H
#define DNSGATE_CLDNS_SHIM_H
// The whole of ldns that dnsgate uses comes in through this header:
// zone-file parsing (RPZ) and wire decoding for the differential tests.
#include <stdio.h>
#include <ldns/ldns.h>
#endif
