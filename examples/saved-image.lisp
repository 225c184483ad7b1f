;;;; SPDX-License-Identifier: MIT
;;;; saved-image.lisp: a block allocated before save-lisp-and-die is at the
;;;; same address when the saved image starts again, after aclheapd
;;;; restarts, crashes or the machine reboots.  The image attaches by
;;;; itself before main runs, and refuses to start if it cannot.
;;;;
;;;;   sbcl --non-interactive --load saved-image.lisp   (writes app.core,
;;;;                                                     or $CORE)
;;;;   sbcl --core app.core --noinform
(require :asdf)
(asdf:load-system "aclheap")

(defvar *table* (aclheap:aclmalloc (* 8 1024)))	; an address, in the image
(when (zerop *table*)
  (error "no room in the heap"))
(setf (aclheap:root "example table") *table*)
(setf (cffi:mem-ref (cffi:make-pointer *table*) :uint64) #xfeedface)	; something to find again
(aclheap:checkpoint)				; durable before the save

(defun main ()
  (let ((found (aclheap:root "example table")))
    (unless (and (= found *table*)
                 (= (cffi:mem-ref (cffi:make-pointer *table*) :uint64) #xfeedface))
      (format t "table moved or changed: #x~X~%" found)
      (uiop:quit 1))
    (format t "table at #x~X~%" *table*)
    (uiop:quit 0)))

(sb-ext:save-lisp-and-die (or (uiop:getenv "CORE") "app.core")
                          :toplevel #'main)
