log.info("this is an info log with ~tilde")
log.error("this is an error log with ~tilde")
log.debug("this is a debug log with ~tilde")
log.warning("this is a warning log ~tilde")

assert(true)
