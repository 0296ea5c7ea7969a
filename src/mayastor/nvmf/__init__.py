"""NVMe over Fabrics: the TCP transport codec (`pdu`), the NVMe structures (`spec`)
and our initiator (`host`). Knows nothing of block devices."""
