;;;; SPDX-License-Identifier: MIT
;;;; aclheap.lisp: the ACLHEAP functions.
;;;;
;;;; The seed's six keep its protocol: aclmalloc answers 0 when no space can
;;;; be had, aclfree answers 0 for 0, for what is not a block and for a
;;;; size-0 block.  Every other failure (no daemon, a different heap, a bad
;;;; root name) is an aclheap-error with errno and the library's words.
;;;; Arguments of the wrong type are type-errors, before anything is asked.
;;;;
;;;; *heap* is the heap this Lisp attached to, as the Lisp side knows it:
;;;; what a saved image re-attaches to and checks (image.lisp).  The first
;;;; call that needs the heap attaches through attach, so it is known.

(in-package #:aclheap)

(defstruct (heap (:constructor make-heap (socket identity base size)))
  socket                                ; as given to attach, NIL: default
  identity                              ; 16 octets, aclheap_identity()
  base
  size)

(defvar *heap* nil)

(defun attached-p ()
  "True when this Lisp is attached to a heap."
  (not (null *heap*)))

(defun current-heap (socket)
  (cffi:with-foreign-objects ((id :uint8 16) (st '(:struct heap-stats)))
    (let ((rc (%identity id)))
      (when (minusp rc)
        (fail 'attach (- rc))))
    (let ((rc (%stats st)))
      (when (minusp rc)
        (fail 'attach (- rc))))
    (make-heap socket
               (let ((v (make-array 16 :element-type '(unsigned-byte 8))))
                 (dotimes (i 16 v)
                   (setf (aref v i) (cffi:mem-aref id :uint8 i))))
               (cffi:foreign-slot-value st '(:struct heap-stats) 'base)
               (cffi:foreign-slot-value st '(:struct heap-stats) 'size))))

(defun call-with-socket (socket fn)
  (if socket
      (cffi:with-foreign-string (s (uiop:native-namestring socket))
        (funcall fn s))
      (funcall fn (cffi:null-pointer))))

(defun attach (&optional socket)
  "Attaches to the aclheapd at SOCKET (a string or pathname), else at
$ACLHEAP_SOCKET, else at the default socket, and maps its heap at the
heap's own address.  T; an aclheap-error when the daemon cannot be reached,
the range is taken in this process (EADDRINUSE), or this Lisp is attached
to another socket (EISCONN)."
  (check-type socket (or null string pathname))
  (let ((rc (call-with-socket socket #'%attach)))
    (when (minusp rc)
      (fail 'attach (- rc))))
  (setf *heap* (current-heap socket))
  t)

(defun detach ()
  "Closes the connection and unmaps the heap.  Addresses into it mean
nothing in this Lisp until the next attach; the blocks live on."
  (%detach)
  (setf *heap* nil)
  nil)

(declaim (notinline ensure-attached))
(defun ensure-attached ()
  (unless *heap*
    (attach)))

(defun alloc-failed (operation)
  "aclmalloc's 0: no space (ENOMEM) is the seed's 0, the rest a condition."
  (let ((e (errno)))
    (if (= e +enomem+)
        0
        (fail operation e))))

(defun free-failed (operation)
  "aclfree's 0: a size-0 block (errno 0) or no block (EINVAL) is the seed's
0; anything else (the daemon went away during an extent's free) is not."
  (let ((e (errno)))
    (if (or (= e 0) (= e +einval+))
        0
        (fail operation e))))

(declaim (inline aclmalloc aclfree))

(defun aclmalloc (size &key restart-relocation)
  "A block of at least SIZE bytes in the persistent heap, aligned to 16: its
address, an integer; 0 when the space cannot be had.  SIZE 0 gives a unique
block.  RESTART-RELOCATION is accepted and has no effect (the heap is never
relocated)."
  (declare (ignore restart-relocation))
  (check-type size (unsigned-byte 64))
  (unless *heap*
    (ensure-attached))
  (let ((p (%aclmalloc size)))
    (if (zerop p)
        (alloc-failed 'aclmalloc)
        p)))

(defun aclfree (address)
  "Frees the block at ADDRESS, from any process; returns the size that was
requested for it.  0 for 0, for an address that is not the start of a live
block (nothing changes), and for a size-0 block."
  (check-type address (unsigned-byte 64))
  (setf (errno) 0)
  (let ((n (%aclfree address)))
    (if (zerop n)
        (free-failed 'aclfree)
        n)))

(defun aclmalloc-aligned (size)
  "Allocates like aclmalloc and returns the block's aligned representation
(address-to-aligned of its address); 0 when the space cannot be had."
  (check-type size (unsigned-byte 64))
  (unless *heap*
    (ensure-attached))
  (let ((a (%aclmalloc-aligned size)))
    (if (zerop a)
        (alloc-failed 'aclmalloc-aligned)
        a)))

(defun aclfree-aligned (aligned)
  "Frees the block whose aligned representation is ALIGNED (from either
family); returns as aclfree."
  (check-type aligned (signed-byte 64))
  (setf (errno) 0)
  (let ((n (%aclfree-aligned aligned)))
    (if (zerop n)
        (free-failed 'aclfree-aligned)
        n)))

(defun address-to-aligned (address)
  "ADDRESS as a signed machine word, shifted right arithmetically by 3:
(address-to-aligned #x10000008) is 33554433.  An address that is not a
multiple of 8 has no aligned representation: an aclheap-error (EINVAL)."
  (check-type address (unsigned-byte 64))
  (unless (zerop (ldb (byte 3 0) address))
    (fail 'address-to-aligned +einval+
          (format nil "#x~X is not a multiple of 8" address)))
  (ash (if (logbitp 63 address) (- address (ash 1 64)) address) -3))

(defun aligned-to-address (aligned)
  "The inverse of address-to-aligned: the address whose aligned
representation is ALIGNED."
  (check-type aligned (signed-byte 64))
  (ldb (byte 64 0) (ash aligned 3)))

;;; Roots.  The name's foreign copy lives until errno is read: its free()
;;; comes after.

(defmacro with-root-name ((var name operation) &body body)
  `(progn
     (check-name ,operation ,name)
     (unless *heap*
       (ensure-attached))
     (cffi:with-foreign-string (,var ,name)
       ,@body)))

(defun root (name &optional default)
  "The value of the root NAME and T; DEFAULT and NIL when there is no such
root.  Roots are saved with the heap: how a restarted program finds its
data."
  (with-root-name (s name 'root)
    (let ((v (%root-get s)))
      (if (/= v 0)
          (values v t)
          (let ((e (errno)))
            (cond ((= e 0) (values 0 t))
                  ((= e +enoent+) (values default nil))
                  (t (fail 'root e))))))))

(defun (setf root) (value name)
  "Creates the root NAME or replaces its value with VALUE (by convention an
address in the heap).  An aclheap-error for a bad name (1 to 255 bytes of
printable ASCII) or a full root table."
  (check-type value (unsigned-byte 64))
  (with-root-name (s name '(setf root))
    (let ((rc (%root-set s value)))
      (when (minusp rc)
        (fail '(setf root) (- rc)))
      value)))

(defun root-cas (name expected desired)
  "Sets the root NAME to DESIRED only if it holds EXPECTED; T if it did, NIL
if the root holds something else (nothing changed).  EXPECTED NIL (or 0):
only if the root does not exist; DESIRED NIL (or 0): remove it."
  (check-type expected (or null (unsigned-byte 64)))
  (check-type desired (or null (unsigned-byte 64)))
  (with-root-name (s name 'root-cas)
    (let ((rc (%root-cas s (or expected 0) (or desired 0))))
      (cond ((zerop rc) t)
            ((= rc (- +eagain+)) nil)
            (t (fail 'root-cas (- rc)))))))

(defun remove-root (name)
  "Removes the root NAME: T, or NIL when there was none."
  (with-root-name (s name 'remove-root)
    (let ((rc (%root-remove s)))
      (cond ((zerop rc) t)
            ((= rc (- +enoent+)) nil)
            (t (fail 'remove-root (- rc)))))))

(defun list-roots ()
  "Every root, as an alist (name . value) sorted by name."
  (ensure-attached)
  (loop with room = 64
        do (cffi:with-foreign-object (out '(:struct heap-root) room)
             (let ((n (%root-list out room)))
               (when (minusp n)
                 (fail 'list-roots (- n)))
               (when (<= n room)
                 (return
                   (sort (loop for i below n
                               for r = (cffi:mem-aptr out '(:struct heap-root) i)
                               collect (cons (cffi:foreign-string-to-lisp
                                              (cffi:foreign-slot-pointer
                                               r '(:struct heap-root) 'name)
                                              :encoding :ascii)
                                             (cffi:foreign-slot-value
                                              r '(:struct heap-root) 'value)))
                         #'string< :key #'car)))
               (setf room (+ n 16))))))

(defun checkpoint ()
  "Asks the daemon to write an image of the heap now; T once it is durable
on disk.  An aclheap-error when it could not be written (EIO, with the
daemon's reason) or this user may not ask (EPERM)."
  (ensure-attached)
  (let ((rc (%checkpoint)))
    (when (minusp rc)
      (fail 'checkpoint (- rc)))
    t))

(defun grow (size)
  "Puts the heap at SIZE bytes while it runs: larger, up to the maximum it
was made with, or smaller when everything past the new end is free.
Nothing moves: every address stays good.  T; an aclheap-error with EINVAL
for a size that is not a multiple of 64 KiB from 4 MiB to the maximum,
EBUSY for a shrink past a block in use, EAGAIN while a checkpoint is
being written, EPERM for a user who may not."
  (check-type size (unsigned-byte 64))
  (ensure-attached)
  (let ((rc (%grow size)))
    (when (minusp rc)
      (fail 'grow (- rc)))
    t))

(defun stats ()
  "The heap's figures from the daemon, a plist: :base :size :data-size
:bytes-in-use :bytes-requested :blocks-in-use :last-checkpoint (unix time,
0: never) :generation (checkpoints written)."
  (ensure-attached)
  (cffi:with-foreign-object (st '(:struct heap-stats))
    (let ((rc (%stats st)))
      (when (minusp rc)
        (fail 'stats (- rc))))
    (cffi:with-foreign-slots ((base size data-size bytes-in-use bytes-requested
                                    blocks-in-use last-checkpoint generation)
                              st (:struct heap-stats))
      (list :base base :size size :data-size data-size
            :bytes-in-use bytes-in-use :bytes-requested bytes-requested
            :blocks-in-use blocks-in-use :last-checkpoint last-checkpoint
            :generation generation))))
