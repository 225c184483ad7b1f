;;;; SPDX-License-Identifier: MIT
;;;; excl.lisp: the aclheap functions under the package names Allegro CL
;;;; gives them, for code ported from Allegro: EXCL (aclmalloc, aclfree,
;;;; and the aligned pair) and FF (address-to-aligned, aligned-to-address).
;;;; The symbols are ACLHEAP's own.  A package that exists already (in
;;;; Allegro, or from another compatibility layer) is left as it is.

(in-package #:aclheap)

(flet ((offer (name symbols)
         (if (find-package name)
             (warn "aclheap/excl: a package ~A exists already; left as it is"
                   name)
             (let ((p (make-package name :use '())))
               (import symbols p)
               (export symbols p)))))
  (offer "EXCL" '(aclmalloc aclfree aclmalloc-aligned aclfree-aligned))
  (offer "FF" '(address-to-aligned aligned-to-address)))
