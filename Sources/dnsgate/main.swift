print("dnsgate")
