;;;; SPDX-License-Identifier: MIT
;;;; image.lisp: saved SBCL images keep their heap.
;;;;
;;;; An image saved with save-lisp-and-die after using the heap holds heap
;;;; addresses in its own data, so it must come back to the same heap at
;;;; the same address, or not come back at all (the seed: "Lisp startup
;;;; will fail").  The save hook remembers the heap (socket, identity,
;;;; base, size), detaches, and closes the library, so that SBCL does not
;;;; reopen it from a path that may be gone.  The init hook, first among
;;;; the image's init hooks, loads the library again (load-library's
;;;; order), attaches, and checks identity, base and size; any failure
;;;; ends the process with a message that says why, before user code runs.

(in-package #:aclheap)

(defvar *saved-heap* nil
  "The heap this image was attached to when it was saved.")

(defun startup-fail (control &rest args)
  (format *error-output* "~&aclheap: this image cannot start: ~?~%"
          control args)
  (finish-output *error-output*)
  (sb-ext:exit :code 1 :abort t))

(defun octets-hex (v)
  (format nil "~(~{~2,'0X~}~)" (coerce v 'list)))

(defun image-save-hook ()
  (setf *saved-heap* *heap*)
  (when *heap*
    (detach))
  (unload-library)
  ;; First at start-up, before any init hook pushed after ours.
  (setf sb-ext:*init-hooks*
        (cons 'image-init-hook (remove 'image-init-hook sb-ext:*init-hooks*))))

(defun image-init-hook ()
  (let ((saved *saved-heap*))
    (setf *saved-heap* nil)
    (handler-case (load-library)
      (error (e)
        (startup-fail "~A" e)))
    (when saved
      (let* ((socket (heap-socket saved))
             (where (if socket
                        (uiop:native-namestring socket)
                        (or (uiop:getenv "ACLHEAP_SOCKET") "the default socket")))
             (rc (call-with-socket socket #'%attach)))
        (when (minusp rc)
          (startup-fail "cannot attach the heap it was saved with (~D bytes ~
                         at #x~X) through ~A: ~A (~A)"
                        (heap-size saved) (heap-base saved) where
                        (%last-error) (%strerror (- rc))))
        (let ((now (handler-case (current-heap socket)
                     (aclheap-error (e)
                       (startup-fail "~A" e)))))
          ;; The identity and the base, not the size: a heap that grew
          ;; (or shrank its free tail) since is the same heap, every
          ;; address the image holds where it was.
          (unless (and (equalp (heap-identity now) (heap-identity saved))
                       (= (heap-base now) (heap-base saved)))
            (%detach)
            (startup-fail "the aclheapd at ~A serves a different heap (~A, ~
                           ~D bytes at #x~X) than the one this image was saved ~
                           with (~A, ~D bytes at #x~X); the image's heap ~
                           addresses would be wrong"
                          where (octets-hex (heap-identity now))
                          (heap-size now) (heap-base now)
                          (octets-hex (heap-identity saved))
                          (heap-size saved) (heap-base saved)))
          (setf *heap* now))))))

(pushnew 'image-save-hook sb-ext:*save-hooks*)
(pushnew 'image-init-hook sb-ext:*init-hooks*)
