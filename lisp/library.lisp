;;;; SPDX-License-Identifier: MIT
;;;; library.lisp: libaclheap's functions as CFFI sees them, errno, and
;;;; the helpers that turn failures into conditions.
;;;;
;;;; Addresses cross as :uintptr, not :pointer: the seed's functions deal
;;;; in integers, and an integer costs no pointer object per call.

(in-package #:aclheap)

;;; The compiler resolves the foreign symbols, so the library is loaded
;;; before the definitions below are compiled, and again when they load.
(eval-when (:compile-toplevel :load-toplevel :execute)
  (load-library))

;;; Inline, the hot ones: the foreign call is then made in the caller, with
;;; its result type known, instead of through a full Lisp call.
(declaim (inline %aclmalloc %aclfree %aclmalloc-aligned %aclfree-aligned
                 %errno-location))

(cffi:defcfun ("aclmalloc" %aclmalloc) :uintptr (size :size))
(cffi:defcfun ("aclmalloc_flags" %aclmalloc-flags) :uintptr
  (size :size) (flags :uint))
(cffi:defcfun ("aclfree" %aclfree) :size (p :uintptr))
(cffi:defcfun ("aclmalloc_aligned" %aclmalloc-aligned) :intptr (size :size))
(cffi:defcfun ("aclfree_aligned" %aclfree-aligned) :size (aligned :intptr))
(cffi:defcfun ("aclheap_address_to_aligned" %address-to-aligned) :intptr
  (address :uintptr))
(cffi:defcfun ("aclheap_aligned_to_address" %aligned-to-address) :uintptr
  (aligned :intptr))
(cffi:defcfun ("aclheap_usable_size" %usable-size) :size (p :uintptr))
(cffi:defcfun ("aclheap_contains" %contains) :int (p :uintptr))
(cffi:defcfun ("aclheap_root_set" %root-set) :int (name :pointer) (p :uintptr))
(cffi:defcfun ("aclheap_root_get" %root-get) :uintptr (name :pointer))
(cffi:defcfun ("aclheap_root_cas" %root-cas) :int
  (name :pointer) (expected :uintptr) (desired :uintptr))
(cffi:defcfun ("aclheap_root_remove" %root-remove) :int (name :pointer))
(cffi:defcfun ("aclheap_root_list" %root-list) :int (out :pointer) (n :size))
(cffi:defcfun ("aclheap_attach" %attach) :int (socket :pointer))
(cffi:defcfun ("aclheap_detach" %detach) :void)
(cffi:defcfun ("aclheap_checkpoint" %checkpoint) :int)
(cffi:defcfun ("aclheap_grow" %grow) :int (size :uint64))
(cffi:defcfun ("aclheap_stats" %stats) :int (out :pointer))
(cffi:defcfun ("aclheap_identity" %identity) :int (out :pointer))
(cffi:defcfun ("aclheap_last_error" %last-error) :string)
(cffi:defcfun ("strerror" %strerror) :string (errnum :int))
;; :uintptr, not :pointer: a pointer object per call, on every aclfree,
;; costs more than the free.
(cffi:defcfun ("__errno_location" %errno-location) :uintptr)

(cffi:defcstruct (heap-stats :size 64)
  (base :uintptr)
  (size :uint64)
  (data-size :uint64)
  (bytes-in-use :uint64)
  (bytes-requested :uint64)
  (blocks-in-use :uint64)
  (last-checkpoint :uint64)
  (generation :uint64))

(defconstant +root-name-max+ 255)

(cffi:defcstruct heap-root
  (name :char :count 256)
  (value :uintptr))

;;; The errno values the seed's semantics turn into 0 returns (Linux).
(defconstant +enoent+ 2)
(defconstant +eagain+ 11)
(defconstant +enomem+ 12)
(defconstant +einval+ 22)

(declaim (inline errno (setf errno)))
(defun errno ()
  (cffi:mem-ref (cffi:make-pointer (%errno-location)) :int))
(defun (setf errno) (value)
  (setf (cffi:mem-ref (cffi:make-pointer (%errno-location)) :int) value))

(defun fail (operation errno &optional message)
  "Signals aclheap-error for errno, with the library's words unless given."
  (let ((text (or message (%last-error) "")))
    (error 'aclheap-error
           :operation operation
           :errno errno
           :message (if (plusp (length text)) text (%strerror errno)))))

(defun check-name (operation name)
  "A root name the C side can see whole: a string without NUL (the library
checks the rest: 1 to 255 bytes of printable ASCII)."
  (check-type name string)
  (when (find (code-char 0) name)
    (fail operation +einval+ "root names are printable ASCII (NUL found)")))
