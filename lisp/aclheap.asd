;;;; SPDX-License-Identifier: MIT
;;;; aclheap.asd: the Common Lisp system for libaclheap, a persistent heap
;;;; shared at one fixed address (aclheapd(8), aclmalloc(3)).
;;;;
;;;;   aclheap          package ACLHEAP: the aclmalloc family as Allegro CL
;;;;                    names it, roots, checkpoints, stats; on SBCL, saved
;;;;                    images re-attach at start-up (image.lisp)
;;;;   aclheap/excl     the same functions in EXCL and FF, for code ported
;;;;                    from Allegro, where no such packages exist
;;;;   aclheap/tests    FiveAM suite; needs a running aclheapd (see
;;;;                    check_lisp.sh)

(defsystem "aclheap"
  :description "The aclmalloc family over libaclheap: blocks in a persistent heap at a fixed address"
  :license "MIT"
  :version "0.1.0"
  :depends-on ("cffi")
  :serial t
  :components ((:file "package")
               (:file "config")
               (:file "loader")
               (:file "library")
               (:file "aclheap")
               (:file "image" :if-feature :sbcl))
  :in-order-to ((test-op (test-op "aclheap/tests"))))

(defsystem "aclheap/excl"
  :description "EXCL and FF package names for the aclheap functions"
  :license "MIT"
  :depends-on ("aclheap")
  :components ((:file "excl")))

(defsystem "aclheap/tests"
  :description "FiveAM tests of aclheap against a real aclheapd"
  :license "MIT"
  :depends-on ("aclheap" "aclheap/excl" "fiveam")
  :components ((:file "tests"))
  :perform (test-op (o c)
             (unless (uiop:symbol-call :fiveam :run!
                                       (uiop:find-symbol* :aclheap :aclheap-tests))
               (error "aclheap tests failed"))))
