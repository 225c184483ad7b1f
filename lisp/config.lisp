;;;; SPDX-License-Identifier: MIT
;;;; config.lisp: where this copy of the system finds libaclheap.
;;;;
;;;; make install writes the installed library's path into the installed
;;;; copy of this file (lisp/include.am); a copy used from the source tree
;;;; has none and loads the system's libaclheap, or $ACLHEAP_LIBRARY.

(in-package #:aclheap)

(defparameter *installed-library* nil)
