"""NVMe base and Fabrics structures: commands, completions, statuses, identify data,
log pages and features. Pure data and codecs; imports nothing of ours."""
