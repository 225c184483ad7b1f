;;;; SPDX-License-Identifier: MIT
;;;; package.lisp: the ACLHEAP package.  The first six names are Allegro
;;;; CL's, with its semantics (0 returns, no conditions for them); the rest
;;;; is the library's API in Lisp style.

(defpackage #:aclheap
  (:use #:common-lisp)
  (:export
   ;; The seed's family.
   #:aclmalloc #:aclfree #:aclmalloc-aligned #:aclfree-aligned
   #:address-to-aligned #:aligned-to-address
   ;; Roots, figures, the connection.
   #:root #:root-cas #:remove-root #:list-roots
   #:checkpoint #:grow #:stats #:attach #:detach #:attached-p
   ;; Errors.
   #:aclheap-error #:aclheap-error-operation #:aclheap-error-errno
   #:aclheap-error-message
   ;; The library.
   #:load-library #:*library*))
