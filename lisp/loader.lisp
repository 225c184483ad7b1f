;;;; SPDX-License-Identifier: MIT
;;;; loader.lisp: finding and loading libaclheap, and the condition every
;;;; failure other than the seed's 0 returns becomes.  A file of its own so
;;;; that it is loaded before library.lisp is compiled: the compiler needs
;;;; the library to resolve the foreign functions.

(in-package #:aclheap)

(define-condition aclheap-error (error)
  ((operation :initarg :operation :reader aclheap-error-operation)
   (errno :initarg :errno :initform 0 :reader aclheap-error-errno)
   (message :initarg :message :initform "" :reader aclheap-error-message))
  (:report (lambda (c s)
             (format s "~(~A~): ~A~@[ (errno ~D)~]"
                     (aclheap-error-operation c)
                     (aclheap-error-message c)
                     (let ((e (aclheap-error-errno c)))
                       (and (plusp e) e)))))
  (:documentation "A failure of libaclheap: errno and the library's own words (aclheap_last_error())."))

(defvar *library* nil
  "The libaclheap this Lisp loaded: the path or name it was found by, or NIL.")

(defvar *library-object* nil)

(defun library-candidates ()
  (let ((env (uiop:getenv "ACLHEAP_LIBRARY")))
    (if (and env (plusp (length env)))
        (list env)              ; asked for: that one or a clear failure
        (remove nil (list *installed-library* "libaclheap.so.1")))))

(defun load-library ()
  "Loads libaclheap unless it is loaded: $ACLHEAP_LIBRARY when set (and then
only it), else the library this system was installed with, else the
system's libaclheap.so.1.  Returns what it was found by."
  (when *library*
    (return-from load-library *library*))
  (let ((tried '()))
    (dolist (c (library-candidates))
      (handler-case
          (progn
            (setf *library-object* (cffi:load-foreign-library c)
                  *library* c)
            (return-from load-library c))
        (error (e)
          (push (format nil "~A (~A)" c e) tried))))
    (error 'aclheap-error
           :operation 'load-library
           :message (format nil "cannot load libaclheap; tried ~{~A~^, ~}"
                            (reverse tried)))))

(defun unload-library ()
  "Closes libaclheap, so that a saved image does not try to reopen it at a
path that may no longer hold it; load-library finds it again."
  (when *library-object*
    (cffi:close-foreign-library *library-object*))
  (setf *library-object* nil
        *library* nil))

