"""Administration commands modelled on Exim's utilities: ``pymta-dumpdb``,
``pymta-tidydb``, ``pymta-fixdb`` (hints databases), ``pymta-next`` (retry times),
``pymta-checkaccess`` (an ACL check through ``pymta -bh``) and ``pymta-stats``
(mainlog statistics).  Each keeps the flags and output format of its Exim counterpart
so that scripts written for Exim keep working."""
