"""Host tools for the pump's programmer link: the client library (pumplink),
key files (keys) and the pumpctl command line."""
